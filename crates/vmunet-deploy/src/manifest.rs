//! The bundle manifest: `MANIFEST.sha256`, one `SHA256  relative/path` line per file, sorted
//! (the format `sha256sum -c` reads, so a device without vmunet can check it too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vmunet_fs::{is_sha256_hex, sha256_file};

use crate::DeployError;

/// The manifest's file name, at the bundle's root.
pub const MANIFEST_FILE: &str = "MANIFEST.sha256";

/// Top-level folder of a bundle where the service keeps its data and logs on the device; not
/// part of the manifest.
pub const RUNTIME_DIR: &str = "var";

/// Relative path (with `/`) to SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries, sorted by path.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Hashes every file under `root` (except the manifest itself and [`RUNTIME_DIR`]).
    pub fn of_dir(root: &Path) -> Result<Self, DeployError> {
        let mut files = BTreeMap::new();
        for rel in list_files(root)? {
            let sha = sha256_file(&root.join(&rel))?;
            files.insert(rel, sha);
        }
        Ok(Self { files })
    }

    /// The manifest text.
    pub fn to_text(&self) -> String {
        self.files
            .iter()
            .map(|(p, h)| format!("{h}  {p}\n"))
            .collect()
    }

    /// Parses manifest text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DeployError> {
        let mut files = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: &str| DeployError::invalid(path, format!("line {}: {why}", i + 1));
            let (hash, rel) = line
                .split_once("  ")
                .ok_or_else(|| bad("expected `SHA256  path`"))?;
            if !is_sha256_hex(hash) {
                return Err(bad("the checksum is not 64 lowercase hex digits"));
            }
            if rel.is_empty()
                || rel.starts_with('/')
                || rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(bad(&format!(
                    "`{rel}` is not a plain relative path inside the bundle"
                )));
            }
            if files.insert(rel.to_string(), hash.to_string()).is_some() {
                return Err(bad(&format!("`{rel}` is listed twice")));
            }
        }
        if files.is_empty() {
            return Err(DeployError::invalid(path, "the manifest lists no files"));
        }
        Ok(Self { files })
    }

    /// Reads `root/MANIFEST.sha256`.
    pub fn read(root: &Path) -> Result<Self, DeployError> {
        let path = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DeployError::invalid(
                &path,
                "missing: this is not a vmunet bundle (or its manifest was deleted)",
            ),
            _ => DeployError::io(&path)(e),
        })?;
        Self::parse(&text, &path)
    }
}

/// Every regular file under `root`, as sorted `/`-separated relative paths, except the
/// manifest and [`RUNTIME_DIR`]. Symbolic links are listed (and then fail to match).
pub fn list_files(root: &Path) -> Result<Vec<String>, DeployError> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(DeployError::io(&dir))?;
        for e in entries {
            let e = e.map_err(DeployError::io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = rel.join(&name);
            let ty = e.file_type().map_err(DeployError::io(e.path()))?;
            if rel.as_os_str().is_empty() && (name == MANIFEST_FILE || name == RUNTIME_DIR) {
                continue;
            }
            if ty.is_dir() {
                stack.push(child);
            } else {
                let parts: Vec<String> = child
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::create_dir_all(dir.path().join("var/out")).unwrap();
        std::fs::write(dir.path().join("models/m.onnx"), b"m").unwrap();
        std::fs::write(dir.path().join("run.sh"), b"r").unwrap();
        std::fs::write(dir.path().join("var/out/x.png"), b"ignored").unwrap();
        let m = Manifest::of_dir(dir.path()).unwrap();
        assert_eq!(
            m.files.keys().collect::<Vec<_>>(),
            ["models/m.onnx", "run.sh"]
        );
        let text = m.to_text();
        assert_eq!(Manifest::parse(&text, Path::new("M")).unwrap(), m);
        let p = Path::new("MANIFEST.sha256");
        for (bad, why) in [
            ("abc  run.sh\n", "64 lowercase"),
            (
                &format!("{}  ../etc/passwd\n", "0".repeat(64)),
                "plain relative",
            ),
            (&format!("{} run.sh\n", "0".repeat(64)), "expected"),
            (&format!("{0}  a\n{0}  a\n", "0".repeat(64)), "twice"),
            ("\n", "no files"),
        ] {
            let e = Manifest::parse(bad, p).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("MANIFEST"), "{bad:?}: {e}");
        }
    }
}
