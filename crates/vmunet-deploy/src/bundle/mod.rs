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
//!
//! Inside: `info` (the request and `bundle.json`), `texts` (run script, systemd unit and
//! README from `src/templates/`), `assemble` (writing the folder) and, here, the checks that
//! come before anything is written.

mod assemble;
mod info;
mod texts;

use std::path::{Path, PathBuf};

use vmunet_fs::sha256_file;
use vmunet_runtime::target::Severity;
use vmunet_runtime::{uses_custom_scan, DeviceProfile, ModelFile, RuntimeKind};

use crate::elf::Arch;
use crate::{DeployError, TOOLKIT_VERSION};
use info::file_name;

pub use info::{
    expectations, BundleInfo, BundleReport, BundleSpec, BundledModel, Expectations, ORT_OPS_LIB,
};
pub use texts::{readme, run_script, systemd_unit};

/// Writes the bundle `spec` describes; see the module documentation.
pub fn create_bundle(spec: &BundleSpec) -> Result<BundleReport, DeployError> {
    // Everything is checked before anything is written.
    let (profile, arch, mut warnings) = check_inputs(spec)?;
    let models = collect_models(spec, &profile, &mut warnings)?;
    let ops = choose_ops_library(spec, &models, arch)?;
    let ort_lib = choose_ort_library(spec, arch)?;
    if profile.runtime == RuntimeKind::Tract && ort_lib.is_some() {
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
        runtime: profile.runtime.to_string(),
        providers: profile
            .providers
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
        arch,
        models,
        ort_ops: ops.is_some(),
        ort_lib,
        expects: expectations(&profile),
    };
    let (files, bytes) = assemble::write_bundle(spec, &info, ops.as_deref())?;
    Ok(BundleReport {
        dir: spec.out.clone(),
        info,
        files,
        bytes,
        warnings,
    })
}

/// At least one model, a destination that may be written, a loadable profile and a binary
/// whose architecture is known; warns when the binary is not built for the profile's `arch`.
fn check_inputs(spec: &BundleSpec) -> Result<(DeviceProfile, Arch, Vec<String>), DeployError> {
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
    if let Some(want) = profile.arch.as_deref().filter(|a| *a != arch.to_string()) {
        warnings.push(format!(
            "{}: the binary is {arch}, but profile `{}` runs on {want}: build it for the \
             device (`make jetson` for aarch64) and pass --binary",
            spec.binary.display(),
            profile.name
        ));
    }
    Ok((profile, arch, warnings))
}

/// Reads every model (names must differ), hashes it and describes it for `bundle.json`;
/// what the device target's check finds becomes a warning (an error stops the bundle).
fn collect_models(
    spec: &BundleSpec,
    profile: &DeviceProfile,
    warnings: &mut Vec<String>,
) -> Result<Vec<BundledModel>, DeployError> {
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
        for f in profile.check(&file.metadata) {
            if f.severity == Severity::Error {
                return Err(DeployError::invalid(m, f.message));
            }
            warnings.push(format!("{}: {f}", m.display()));
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
    Ok(models)
}

/// The custom-operator library to ship: the one given, else (a model needs it) the one
/// beside the binary, which must exist; built for the binary's architecture.
fn choose_ops_library(
    spec: &BundleSpec,
    models: &[BundledModel],
    arch: Arch,
) -> Result<Option<PathBuf>, DeployError> {
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
        check_arch(lib, arch)?;
    }
    Ok(ops)
}

/// The file name of the ONNX Runtime library to ship in `lib/`, if one is given (built for
/// the binary's architecture).
fn choose_ort_library(spec: &BundleSpec, arch: Arch) -> Result<Option<String>, DeployError> {
    match &spec.ort_lib {
        Some(lib) => {
            check_arch(lib, arch)?;
            Ok(Some(file_name(lib)?))
        }
        None => Ok(None),
    }
}

/// `lib` is built for `arch`, the binary's architecture.
fn check_arch(lib: &Path, arch: Arch) -> Result<(), DeployError> {
    let lib_arch = Arch::of_file(lib)?;
    if lib_arch != arch {
        return Err(DeployError::invalid(
            lib,
            format!("built for {lib_arch}, but the binary is {arch}"),
        ));
    }
    Ok(())
}
