//! `vmunet bundle`: the folder a technician copies onto the device.
//!
//! ```text
//! BUNDLE/
//!   bin/vmunet                 the (deployment) binary
//!   lib/libvmunet_ort_ops.so   the custom scan operator, when a model uses it
//!   lib/libonnxruntime.so*     optional: an ONNX Runtime to ship along
//!   models/*.onnx              the models (the first is the service's)
//!   profile.toml               the device profile
//!   run.sh                     serve | bench | verify | status | install-service
//!   vmunet.service             systemd unit template (run.sh install-service fills it in)
//!   README.md                  versions expected, commands to start, stop and check
//!   bundle.json                what is inside, machine-readable
//!   MANIFEST.sha256            SHA-256 of every file above
//!   var/                       created on the device: service data and logs (not hashed)
//! ```
//!
//! The bundle is assembled in a temporary folder beside the destination, every file and
//! folder fsynced, and renamed into place: a crash leaves no half-written bundle.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use vmunet_onnx_ir::ScanForm;
use vmunet_runtime::{uses_custom_scan, DeviceProfile, ModelFile, ProviderName, RuntimeKind};

use crate::elf::Arch;
use crate::fsutil::{copy_durable, sync_dir, write_durable};
use crate::hash::sha256_file;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{DeployError, TOOLKIT_VERSION};

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

/// What [`create_bundle`] wrote.
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
    let gpu = profile
        .providers
        .iter()
        .any(|p| matches!(p, ProviderName::Cuda | ProviderName::Tensorrt));
    match (profile.runtime_kind(), gpu) {
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

fn file_name(path: &Path) -> Result<String, DeployError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DeployError::invalid(path, "not a file name"))
}

/// Writes the bundle `spec` describes; see the module documentation.
pub fn create_bundle(spec: &BundleSpec) -> Result<BundleReport, DeployError> {
    // Everything is checked before anything is written.
    if spec.models.is_empty() {
        return Err(DeployError::invalid(&spec.out, "give at least one --model"));
    }
    if spec.out.exists() && !spec.force {
        return Err(DeployError::invalid(
            &spec.out,
            "already exists (pass --force to replace it)",
        ));
    }
    let profile = DeviceProfile::load(&spec.profile)?;
    let arch = Arch::of_file(&spec.binary)?;
    let mut warnings = Vec::new();
    if profile.name.to_ascii_lowercase().contains("jetson") && arch != Arch::Aarch64 {
        warnings.push(format!(
            "{}: the binary is {arch}, but profile `{}` is a Jetson (aarch64): build it with \
             `make jetson` and pass --binary",
            spec.binary.display(),
            profile.name
        ));
    }
    let mut models = Vec::new();
    let mut names = std::collections::HashSet::new();
    for m in &spec.models {
        let file = ModelFile::read(m)?;
        let name = file_name(m)?;
        if !names.insert(name.clone()) {
            return Err(DeployError::invalid(
                m,
                format!("two models are named {name}; rename one"),
            ));
        }
        if let Some(scan) = file.metadata.scan {
            if scan != profile.scan {
                warnings.push(format!(
                    "{}: exported with --scan {scan}, but profile `{}` asks for `{}`{}",
                    m.display(),
                    profile.name,
                    profile.scan,
                    if profile.scan == ScanForm::Chunked && scan != ScanForm::Chunked {
                        " (TensorRT compiles only the chunked form whole; the rest falls \
                         back to CUDA / CPU)"
                    } else {
                        ""
                    }
                ));
            }
        }
        models.push(BundledModel {
            file: format!("models/{name}"),
            sha256: sha256_file(m)?,
            scan: file.metadata.scan.map(|s| s.to_string()),
            precision: file.metadata.precision.map(|p| p.as_str().to_string()),
            input: file.input.to_string(),
            custom_op: uses_custom_scan(&file),
        });
    }
    let needs_ops = models.iter().any(|m| m.custom_op);
    let ops = match (&spec.ort_ops, needs_ops) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => {
            let beside = spec
                .binary
                .parent()
                .unwrap_or(Path::new("."))
                .join(ORT_OPS_LIB);
            if !beside.is_file() {
                return Err(DeployError::invalid(
                    &beside,
                    "a model uses the custom scan operator (ai.vmunet::SelectiveScan) and \
                     the library is not beside the binary: build it (`make jetson` builds \
                     both) or give --ort-ops",
                ));
            }
            Some(beside)
        }
        (None, false) => None,
    };
    if let Some(lib) = &ops {
        let lib_arch = Arch::of_file(lib)?;
        if lib_arch != arch {
            return Err(DeployError::invalid(
                lib,
                format!("built for {lib_arch}, but the binary is {arch}"),
            ));
        }
    }
    let ort_lib_name = match &spec.ort_lib {
        Some(lib) => {
            let lib_arch = Arch::of_file(lib)?;
            if lib_arch != arch {
                return Err(DeployError::invalid(
                    lib,
                    format!("built for {lib_arch}, but the binary is {arch}"),
                ));
            }
            Some(file_name(lib)?)
        }
        None => None,
    };
    if profile.runtime_kind() == RuntimeKind::Tract && ort_lib_name.is_some() {
        warnings.push(format!(
            "profile `{}` runs tract; the ONNX Runtime library is shipped but unused",
            profile.name
        ));
    }

    let info = BundleInfo {
        format: 1,
        toolkit_version: TOOLKIT_VERSION.into(),
        created: crate::utc_timestamp(crate::unix_now()),
        profile: profile.name.clone(),
        runtime: profile.runtime.clone(),
        providers: profile
            .providers
            .iter()
            .map(|p| format!("{p:?}").to_lowercase())
            .collect(),
        arch,
        models,
        ort_ops: ops.is_some(),
        ort_lib: ort_lib_name.clone(),
        expects: expectations(&profile),
    };

    // Assemble beside the destination, then rename.
    let parent = spec
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(DeployError::io(&parent))?;
    let base = file_name(&spec.out)?;
    let tmp = parent.join(format!(".{base}.{}.partial", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = assemble(spec, &tmp, &info, ops.as_deref());
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let (files, bytes) = result.unwrap_or_default();
    if spec.out.exists() {
        let old = parent.join(format!(".{base}.{}.old", std::process::id()));
        std::fs::rename(&spec.out, &old).map_err(DeployError::io(&spec.out))?;
        std::fs::rename(&tmp, &spec.out).map_err(DeployError::io(&spec.out))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, &spec.out).map_err(DeployError::io(&spec.out))?;
    }
    sync_dir(&parent)?;
    Ok(BundleReport {
        dir: spec.out.clone(),
        info,
        files,
        bytes,
        warnings,
    })
}

fn mkdir(p: &Path) -> Result<(), DeployError> {
    std::fs::create_dir_all(p).map_err(DeployError::io(p))
}

fn set_mode(p: &Path, mode: u32) -> Result<(), DeployError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(DeployError::io(p))
}

/// Writes every file into `dir`; returns (files, bytes) of the manifest.
fn assemble(
    spec: &BundleSpec,
    dir: &Path,
    info: &BundleInfo,
    ops: Option<&Path>,
) -> Result<(usize, u64), DeployError> {
    for sub in ["bin", "models", "lib"] {
        mkdir(&dir.join(sub))?;
    }
    let bin = dir.join("bin/vmunet");
    copy_durable(&spec.binary, &bin)?;
    set_mode(&bin, 0o755)?;
    for (m, bm) in spec.models.iter().zip(&info.models) {
        copy_durable(m, &dir.join(&bm.file))?;
    }
    if let Some(lib) = ops {
        copy_durable(lib, &dir.join("lib").join(ORT_OPS_LIB))?;
    }
    if let (Some(lib), Some(name)) = (&spec.ort_lib, &info.ort_lib) {
        copy_durable(lib, &dir.join("lib").join(name))?;
    }
    copy_durable(&spec.profile, &dir.join("profile.toml"))?;
    let run = dir.join("run.sh");
    write_durable(&run, run_script(info).as_bytes())?;
    set_mode(&run, 0o755)?;
    write_durable(&dir.join("vmunet.service"), systemd_unit(info).as_bytes())?;
    write_durable(&dir.join("README.md"), readme(info).as_bytes())?;
    let json = serde_json::to_string_pretty(info).map_err(|e| {
        DeployError::invalid(dir.join("bundle.json"), format!("cannot encode: {e}"))
    })?;
    write_durable(&dir.join("bundle.json"), format!("{json}\n").as_bytes())?;
    for sub in ["bin", "models", "lib"] {
        sync_dir(&dir.join(sub))?;
    }
    let manifest = Manifest::of_dir(dir)?;
    write_durable(&dir.join(MANIFEST_FILE), manifest.to_text().as_bytes())?;
    let mut bytes = 0;
    for rel in manifest.files.keys() {
        bytes += std::fs::metadata(dir.join(rel))
            .map_err(DeployError::io(dir.join(rel)))?
            .len();
    }
    Ok((manifest.files.len(), bytes))
}

/// `run.sh`: one entry point for the technician and for systemd.
pub fn run_script(info: &BundleInfo) -> String {
    let model = info
        .models
        .first()
        .map(|m| m.file.as_str())
        .unwrap_or("models/model.onnx");
    let mut s = String::new();
    let _ = write!(
        s,
        r#"#!/bin/sh
# vmunet bundle for {profile} (vmunet {version}, {arch}).
#   ./run.sh serve            segment every image dropped into $VMUNET_IN (default var/in)
#   ./run.sh bench            latency table for this device into var/logs/
#   ./run.sh verify           check every file against MANIFEST.sha256 and open the models
#   ./run.sh status           the service's status file
#   ./run.sh install-service  install and start the systemd unit (as root)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
VMUNET_IN=${{VMUNET_IN:-$HERE/var/in}}
VMUNET_OUT=${{VMUNET_OUT:-$HERE/var/out}}
VMUNET_LOGS=${{VMUNET_LOGS:-$HERE/var/logs}}
VMUNET_MODEL=${{VMUNET_MODEL:-$HERE/{model}}}
# ONNX Runtime: ORT_DYLIB_PATH if set, else lib/ beside bin/, else the system loader's path.
if [ -z "${{ORT_DYLIB_PATH:-}}" ]; then
  for lib in "$HERE"/lib/libonnxruntime.so*; do
    [ -e "$lib" ] && ORT_DYLIB_PATH=$lib && export ORT_DYLIB_PATH && break
  done
fi
cmd=${{1:-serve}}
[ $# -gt 0 ] && shift
case "$cmd" in
  serve)
    mkdir -p "$VMUNET_IN" "$VMUNET_OUT" "$VMUNET_LOGS"
    exec "$HERE/bin/vmunet" serve --watch "$VMUNET_IN" --out "$VMUNET_OUT" \
      --profile "$HERE/profile.toml" --model "$VMUNET_MODEL" "$@" ;;
  bench)
    mkdir -p "$VMUNET_LOGS"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    "$HERE/bin/vmunet" bench --profile "$HERE/profile.toml" --model "$VMUNET_MODEL" \
      --json "$VMUNET_LOGS/bench-$stamp.json" "$@" | tee "$VMUNET_LOGS/bench-$stamp.txt" ;;
  verify)
    exec "$HERE/bin/vmunet" verify-bundle "$HERE" "$@" ;;
  status)
    cat "$VMUNET_OUT/status.json" ;;
  install-service)
    sed -e "s|@BUNDLE@|$HERE|g" -e "s|@USER@|${{VMUNET_USER:-$(id -un)}}|g" \
      "$HERE/vmunet.service" > /etc/systemd/system/vmunet.service
    systemctl daemon-reload
    systemctl enable --now vmunet.service
    echo "vmunet.service installed and started; logs: journalctl -u vmunet -f" ;;
  *)
    echo "usage: $0 [serve|bench|verify|status|install-service]" >&2
    exit 2 ;;
esac
"#,
        profile = info.profile,
        version = info.toolkit_version,
        arch = info.arch,
    );
    s
}

/// The systemd unit template (`@BUNDLE@` and `@USER@` are filled in by `run.sh
/// install-service`).
pub fn systemd_unit(info: &BundleInfo) -> String {
    format!(
        r#"[Unit]
Description=vmunet watch-folder segmentation ({profile})
After=local-fs.target
# Checks every file against the manifest before each start.
[Service]
Type=simple
User=@USER@
WorkingDirectory=@BUNDLE@
ExecStartPre=@BUNDLE@/run.sh verify --files-only
ExecStart=@BUNDLE@/run.sh serve
# SIGTERM: the service finishes the image in hand, then exits.
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=5
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
"#,
        profile = info.profile
    )
}

/// The bundle's README.
pub fn readme(info: &BundleInfo) -> String {
    let mut s = format!(
        "# vmunet bundle: {profile}\n\n\
         Written by vmunet {version} on {created}. Binary: `bin/vmunet` ({arch}). \
         Runtime: {runtime} ({providers}).\n\n\
         ## What the device needs\n\n\
         - System: {system}\n\
         - ONNX Runtime: {ort}\n\
         - GPU stack: {gpu}\n\n\
         ## Models\n\n| file | scan | precision | input | SHA-256 |\n|---|---|---|---|---|\n",
        profile = info.profile,
        version = info.toolkit_version,
        created = info.created,
        arch = info.arch,
        runtime = info.runtime,
        providers = info.providers.join(", "),
        system = info.expects.system,
        ort = info.expects.onnxruntime,
        gpu = info.expects.gpu,
    );
    for m in &info.models {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | `{}` |",
            m.file,
            m.scan.as_deref().unwrap_or("-"),
            m.precision.as_deref().unwrap_or("-"),
            m.input.replace('`', ""),
            m.sha256
        );
    }
    s.push_str(
        "\nThe service runs the first model; `VMUNET_MODEL=models/OTHER.onnx ./run.sh serve` \
         runs another.\n",
    );
    if info.ort_ops {
        s.push_str(
            "\n`lib/libvmunet_ort_ops.so` holds the custom scan operator for stock ONNX \
             Runtime users (Python: `SessionOptions.register_custom_ops_library`, Triton: \
             `model_operations`); `bin/vmunet` has it built in.\n",
        );
    }
    s.push_str(
        r#"
## Check, start, stop

```sh
./run.sh verify                 # every file against MANIFEST.sha256, each model opened and run once
sha256sum -c MANIFEST.sha256    # the same file check without vmunet
./run.sh bench                  # latency table for this device: var/logs/bench-*.txt / .json
./run.sh serve                  # foreground; images into var/in, results in var/out
sudo ./run.sh install-service   # as a systemd service, started at boot
systemctl status vmunet         # is it running
journalctl -u vmunet -f         # its logs
sudo systemctl stop vmunet      # stop (finishes the image in hand)
./run.sh status                 # var/out/status.json: live, ready, images done/failed/queued
```

Environment: `VMUNET_IN`, `VMUNET_OUT`, `VMUNET_LOGS` (default `var/in`, `var/out`,
`var/logs`), `VMUNET_MODEL`, `ORT_DYLIB_PATH` (default: `lib/libonnxruntime.so*`, else the
system's).

## What the service writes

For each image `NAME.ext` that appears in the input folder (copies in progress are waited for;
`NAME.ext.part` files are ignored until renamed):

- `NAME_mask.png`, `NAME_overlay.png`, `NAME.json` (model SHA-256, runtime, provider, timings,
  lesion area), each written atomically;
- a line in `audit.jsonl` (what was processed, by which model);
- an image that cannot be decoded is moved to `failed/` with `NAME.ext.reason.txt`.

Each image is processed exactly once, across crashes, power loss and restarts
(`var/out/.vmunet/journal.jsonl`). Everything under `var/` is the device's own and not in the
manifest.
"#,
    );
    s
}
