//! What a bundle is made of and says about itself: the request ([`BundleSpec`]), the
//! machine-readable description (`bundle.json`, [`BundleInfo`]) and what was written
//! ([`BundleReport`]).

use std::path::{Path, PathBuf};

use serde::Serialize;
use vmunet_runtime::{DeviceProfile, RuntimeKind};

use crate::elf::Arch;
use crate::DeployError;

/// The custom-operator library's file name.
pub const ORT_OPS_LIB: &str = "libvmunet_ort_ops.so";

/// What to put in a bundle.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// Device profile (`devices/*.toml`).
    pub profile: PathBuf,
    /// ONNX models; the first is the one the service runs.
    pub models: Vec<PathBuf>,
    /// The vmunet binary for the device (e.g. `make jetson`'s aarch64 build).
    pub binary: PathBuf,
    /// `libvmunet_ort_ops.so` for the device (default: beside `binary`); needed when a model
    /// uses the custom scan operator.
    pub ort_ops: Option<PathBuf>,
    /// An ONNX Runtime library to ship in `lib/` (else the device's is used).
    pub ort_lib: Option<PathBuf>,
    /// Destination folder (must not exist unless `force`).
    pub out: PathBuf,
    /// Replace an existing destination.
    pub force: bool,
}

/// One model in a bundle.
#[derive(Debug, Clone, Serialize)]
pub struct BundledModel {
    /// Path inside the bundle.
    pub file: String,
    /// SHA-256.
    pub sha256: String,
    /// Scan formulation recorded in the export.
    pub scan: Option<String>,
    /// Precision recorded in the export.
    pub precision: Option<String>,
    /// Declared input.
    pub input: String,
    /// Uses `ai.vmunet::SelectiveScan`.
    pub custom_op: bool,
}

/// What the device needs, in words (README and `bundle.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Expectations {
    /// Operating system / JetPack.
    pub system: String,
    /// ONNX Runtime.
    pub onnxruntime: String,
    /// CUDA and TensorRT.
    pub gpu: String,
}

/// `bundle.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    /// Format version of this file.
    pub format: u32,
    /// vmunet version that wrote the bundle.
    pub toolkit_version: String,
    /// When (UTC).
    pub created: String,
    /// Profile name.
    pub profile: String,
    /// Runtime the profile selects.
    pub runtime: String,
    /// Providers in order.
    pub providers: Vec<String>,
    /// Architecture of `bin/vmunet`.
    pub arch: Arch,
    /// Models, the service's first.
    pub models: Vec<BundledModel>,
    /// `lib/libvmunet_ort_ops.so` is included.
    pub ort_ops: bool,
    /// `lib/` holds an ONNX Runtime.
    pub ort_lib: Option<String>,
    /// What the device needs.
    pub expects: Expectations,
}

/// What [`super::create_bundle`] wrote.
#[derive(Debug, Clone)]
pub struct BundleReport {
    /// The bundle folder.
    pub dir: PathBuf,
    /// Its `bundle.json`.
    pub info: BundleInfo,
    /// Files in the manifest.
    pub files: usize,
    /// Total bytes.
    pub bytes: u64,
    /// Things the user should know (a model's scan form differs from the profile's, ...).
    pub warnings: Vec<String>,
}

/// The versions a profile's target needs.
pub fn expectations(profile: &DeviceProfile) -> Expectations {
    match (profile.runtime, profile.uses_gpu()) {
        (RuntimeKind::Ort, true) => Expectations {
            system: "JetPack 6.1 or 6.2 (L4T R36.4, Ubuntu 22.04, glibc 2.35); for JetPack 5 \
                     (glibc 2.31) build the binary with `make jetson-jp5`"
                .into(),
            onnxruntime: "ONNX Runtime 1.23 built with the CUDA and TensorRT providers \
                          (Jetson Zoo / JetPack 6 wheel); any 1.20 or newer speaks this \
                          binary's C API, and without the GPU providers it runs on the CPU"
                .into(),
            gpu: "CUDA 12.6, cuDNN 9, TensorRT 10.3 (JetPack 6.1/6.2)".into(),
        },
        (RuntimeKind::Ort, false) => Expectations {
            system: "Linux with glibc 2.35 or newer (2.31 with `make jetson-jp5`)".into(),
            onnxruntime: "ONNX Runtime 1.20 or newer (CPU), in lib/, ORT_DYLIB_PATH or the \
                          system loader's path"
                .into(),
            gpu: "none".into(),
        },
        _ => Expectations {
            system: "Linux with glibc 2.35 or newer (2.31 with `make jetson-jp5`)".into(),
            onnxruntime: "not needed: tract is built into the binary".into(),
            gpu: "none".into(),
        },
    }
}

/// The last component of `path`, as text.
pub(super) fn file_name(path: &Path) -> Result<String, DeployError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DeployError::invalid(path, "not a file name"))
}
