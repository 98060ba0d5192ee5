//! What [`super::write_triton_repo`] is asked to write ([`TritonSpec`]) and what it wrote
//! ([`TritonReport`]).

use std::path::PathBuf;

use vmunet_runtime::DeviceProfile;

/// What to write.
#[derive(Debug, Clone)]
pub struct TritonSpec {
    /// The ONNX model.
    pub model: PathBuf,
    /// Device profile for the accelerator settings (None: CPU instances, no accelerator).
    pub profile: Option<DeviceProfile>,
    /// Model name in the repository (default: the file stem).
    pub name: Option<String>,
    /// Largest batch Triton forms (models with a free batch dimension).
    pub max_batch: usize,
    /// `libvmunet_ort_ops.so` (custom-scan models; built for the server's architecture).
    pub ort_ops: Option<PathBuf>,
    /// Where the repository is mounted on the server (absolute; Triton loads the custom-op
    /// library from there).
    pub mount: String,
    /// Folder on the server for TensorRT's engine and timing caches.
    pub trt_cache: String,
    /// Repository folder (created if missing; an existing model of the same name is replaced).
    pub out: PathBuf,
}

/// What [`super::write_triton_repo`] wrote.
#[derive(Debug, Clone)]
pub struct TritonReport {
    /// `REPO/NAME`.
    pub model_dir: PathBuf,
    /// `REPO/NAME/config.pbtxt`.
    pub config: PathBuf,
    /// Model name.
    pub name: String,
    /// `max_batch_size` (0: the model's batch is fixed).
    pub max_batch_size: usize,
    /// The custom-op library was copied and named in `model_operations`.
    pub custom_op: bool,
    /// Things the user should know.
    pub warnings: Vec<String>,
}
