//! The reference model (`models/isic2017-16-128.bpk`, trained by `vmunet train` on ISIC 2017;
//! models/README.md) compiled into the binary as its ONNX export, so that `vmunet infer`,
//! `vmunet serve` and the page segment photos with no `--model` on a device that has nothing
//! but the binary.
//!
//! The export is `models/isic2017-16-128.onnx`, made by
//! `vmunet export --checkpoint models/isic2017-16-128.bpk --class-names lesion --scan custom`
//! (`make models/isic2017-16-128.onnx`); a test of the full build exports the checkpoint again
//! and requires the same bytes, so the embedded file cannot drift from the record.
//!
//! Runtimes open files, so [`EmbeddedModel::materialize`] writes the bytes once to a cache
//! folder under their SHA-256 (durably: temporary file, fsync, rename) and returns the path;
//! a file already there is used only if its hash matches.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// A model compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedModel {
    /// Its name (the checkpoint's stem): the model name a server lists.
    pub name: &'static str,
    /// The ONNX bytes.
    pub onnx: &'static [u8],
    /// The checkpoint it was exported from (repository path).
    pub source: &'static str,
}

/// The shipped reference model: VM-UNet dims 16..128, one class (lesion), 128x128 input,
/// the `ai.vmunet::SelectiveScan` operator (tract and vmunet's ONNX Runtime run it).
pub const REFERENCE: EmbeddedModel = EmbeddedModel {
    name: "isic2017-16-128",
    onnx: include_bytes!("../../../models/isic2017-16-128.onnx"),
    source: "models/isic2017-16-128.bpk",
};

/// Writing the embedded model to its cache file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the embedded model {name} to {}: {source}", path.display())]
pub struct MaterializeError {
    /// The model.
    pub name: &'static str,
    /// The file it was written to.
    pub path: PathBuf,
    /// Cause.
    pub source: std::io::Error,
}

impl EmbeddedModel {
    /// SHA-256 of the ONNX bytes (lowercase hex).
    pub fn sha256(&self) -> String {
        vmunet_fs::sha256_hex(self.onnx)
    }

    /// The file name the model is written under: `NAME-SHA12.onnx`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.onnx", self.name, &self.sha256()[..12])
    }

    /// Writes the model into `dir` (created if missing) unless an identical file is there;
    /// returns its path.
    pub fn materialize_in(&self, dir: &Path) -> Result<PathBuf, MaterializeError> {
        let path = dir.join(self.file_name());
        let err = |source| MaterializeError {
            name: self.name,
            path: path.clone(),
            source,
        };
        if let Ok(hash) = vmunet_fs::sha256_file(&path) {
            if hash == self.sha256() {
                return Ok(path);
            }
        }
        std::fs::create_dir_all(dir).map_err(err)?;
        vmunet_fs::write_durable(&path, self.onnx).map_err(|e| err(e.source))?;
        Ok(path)
    }

    /// Writes the model into the cache folder ([`cache_dir`]) and returns its path.
    pub fn materialize(&self) -> Result<PathBuf, MaterializeError> {
        self.materialize_in(&cache_dir())
    }
}

/// Where embedded models are written: `$VMUNET_CACHE_DIR`, else `$XDG_CACHE_HOME/vmunet/models`,
/// else `~/.cache/vmunet/models`, else the temporary folder.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VMUNET_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("vmunet").join("models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materializes_once_and_repairs_a_damaged_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = REFERENCE.materialize_in(dir.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), REFERENCE.onnx);
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("isic2017-16-128-"));
        // A damaged copy (a torn write by another tool, a bit flip) is replaced.
        std::fs::write(&p, b"not the model").unwrap();
        let again = REFERENCE.materialize_in(dir.path()).unwrap();
        assert_eq!(again, p);
        assert_eq!(vmunet_fs::sha256_file(&p).unwrap(), REFERENCE.sha256());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
