//! Writing a bundle: every file into a temporary folder beside the destination, each fsynced,
//! then the folder put in place of the destination whole ([`vmunet_fs::replace_dir`]), so a
//! crash leaves no half-written bundle.

use std::path::Path;

use vmunet_fs::{copy_durable, replace_dir, sync_dir, write_durable};

use super::info::{file_name, BundleInfo, BundleSpec, ORT_OPS_LIB};
use super::texts::{readme, run_script, systemd_unit};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::DeployError;

/// Writes the bundle `info` describes to `spec.out` (replacing it); `ops` is the custom
/// operator library to ship. Returns (files, bytes) of the manifest.
pub(super) fn write_bundle(
    spec: &BundleSpec,
    info: &BundleInfo,
    ops: Option<&Path>,
) -> Result<(usize, u64), DeployError> {
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
    let written = match assemble(spec, &tmp, info, ops) {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    replace_dir(&tmp, &spec.out)?;
    Ok(written)
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
