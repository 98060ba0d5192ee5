//! The one place vmunet writes and hashes files.
//!
//! - [`write_durable`], [`copy_durable`], [`move_durable`], [`replace_dir`]: a temporary file
//!   (or folder) in the destination's folder, fsynced, renamed into place, and the folder
//!   fsynced, so a crash or power loss leaves either the old file or the complete new one,
//!   never a torn one. Masks, overlays, records, checkpoints, ONNX files, bundles and reports
//!   are all written this way.
//! - [`hash`]: SHA-256 of bytes and files, as lowercase hex (model and image identities,
//!   manifests, provenance).
//! - [`failpoint`]: crash injection for the exactly-once tests (`VMUNET_FAILPOINT`).

#![deny(missing_docs)]

pub mod failpoint;
pub mod hash;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use hash::{is_sha256_hex, sha256_file, sha256_hex};

/// A file operation that failed, with the file it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FsError {
    /// The file or folder.
    pub path: PathBuf,
    /// Cause.
    pub source: std::io::Error,
}

impl FsError {
    /// An error on `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }

    /// A closure for `map_err` that names `path`.
    pub fn at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self { path, source }
    }
}

/// The suffix of vmunet's temporary files; [`remove_stale_temporaries`] removes them.
pub const TMP_SUFFIX: &str = ".vmunet-tmp";

/// The crash point halfway through an output's temporary file ([`write_durable_output`]).
pub const MID_WRITE: &str = "mid-write";

/// The temporary file the durable writes use for `path` (hidden, in the same folder).
pub fn temporary_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()))
}

/// The folder `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Fsyncs a folder (its entries: a rename into it becomes durable).
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(FsError::at(dir))
}

/// Writes `bytes` to `path` durably: temporary file in the same folder, fsync, rename, fsync
/// of the folder. On error the temporary file is removed and `path` is untouched.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_bytes(path, bytes, None)
}

/// Writes `bytes` to `path` atomically but without fsync (temporary file, rename): readers
/// never see a torn file, but a power loss may lose it. For files that are cheap to make again
/// (generated data sets, arrays, logs rewritten every epoch).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = temporary_for(path);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            FsError::new(path, e)
        })
}

/// [`write_durable`] for the outputs of a segmentation (masks, overlays, records, reasons):
/// the [`MID_WRITE`] crash point sits halfway through the temporary file.
pub fn write_durable_output(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_bytes(path, bytes, Some(MID_WRITE))
}

fn write_bytes(path: &Path, bytes: &[u8], point: Option<&str>) -> Result<(), FsError> {
    write_durable_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        match point.filter(|p| failpoint::is_armed(p)) {
            Some(p) => {
                f.write_all(&bytes[..bytes.len() / 2])?;
                f.sync_all()?;
                failpoint::hit(p);
                f.write_all(&bytes[bytes.len() / 2..])?;
            }
            None => f.write_all(bytes)?,
        }
        f.sync_all()
    })
}

/// Durable write through a writer that wants a path: `write` creates the temporary file it is
/// given (e.g. a record library's `save(path)`); it is then fsynced, renamed to `path` and the
/// folder fsynced. On error the temporary file is removed and `path` is untouched.
pub fn write_durable_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), FsError> {
    let tmp = temporary_for(path);
    let result = write(&tmp)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(FsError::new(path, e));
    }
    sync_dir(parent_dir(path))
}

/// Copies `from` to `to` durably (as [`write_durable`], streaming), keeping the permission
/// bits.
pub fn copy_durable(from: &Path, to: &Path) -> Result<(), FsError> {
    if let Err(e) = std::fs::metadata(from) {
        return Err(FsError::new(from, e));
    }
    write_durable_with(to, |tmp| std::fs::copy(from, tmp).map(|_| ()))
}

/// Moves `from` to `to`: a rename on the same file system, else a durable copy and removal.
pub fn move_durable(from: &Path, to: &Path) -> Result<(), FsError> {
    match std::fs::rename(from, to) {
        Ok(()) => {
            sync_dir(parent_dir(to))?;
            sync_dir(parent_dir(from))
        }
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another file system.
            copy_durable(from, to)?;
            std::fs::remove_file(from).map_err(FsError::at(from))?;
            sync_dir(parent_dir(from))
        }
        Err(e) => Err(FsError::new(from, e)),
    }
}

/// Puts the finished folder `staged` in place of `dest` (which may exist): the old one is
/// renamed aside, the new one renamed in, the old one removed, and the parent fsynced. A crash
/// leaves `dest` either as it was or complete.
pub fn replace_dir(staged: &Path, dest: &Path) -> Result<(), FsError> {
    let parent = parent_dir(dest);
    if dest.exists() {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old = parent.join(format!(".{name}.{}.old", std::process::id()));
        std::fs::rename(dest, &old).map_err(FsError::at(dest))?;
        std::fs::rename(staged, dest).map_err(FsError::at(dest))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(staged, dest).map_err(FsError::at(dest))?;
    }
    sync_dir(parent)
}

/// Removes temporary files vmunet left in `dir` (a crash mid-write); returns how many.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, FsError> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FsError::new(dir, e)),
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_file(e.path()).map_err(FsError::at(e.path()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A name in `dir` not yet taken: `name`, else `stem.1.ext`, `stem.2.ext`, ...
pub fn free_name(dir: &Path, name: &str) -> String {
    if !dir.join(name).exists() {
        return name.to_string();
    }
    let p = Path::new(name);
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
    let ext = p.extension().map(|s| s.to_string_lossy().into_owned());
    (1..)
        .map(|i| match (&stem, &ext) {
            (Some(s), Some(e)) => format!("{s}.{i}.{e}"),
            _ => format!("{name}.{i}"),
        })
        .find(|n| !dir.join(n).exists())
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_durable(&p, b"one").unwrap();
        write_durable(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(temporary_for(&dir.path().join("b.png")), b"torn").unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A write into a missing folder fails, naming the file.
        let e = write_durable(&dir.path().join("no/such.png"), b"x").unwrap_err();
        assert!(e.to_string().contains("such.png"), "{e}");
        let e = write_atomic(&dir.path().join("no/such.npy"), b"x").unwrap_err();
        assert!(e.to_string().contains("such.npy"), "{e}");
        write_atomic(&dir.path().join("a.npy"), b"x").unwrap();
        std::fs::remove_file(dir.path().join("a.npy")).unwrap();
        assert_eq!(free_name(dir.path(), "a.json"), "a.1.json");
        assert_eq!(free_name(dir.path(), "c.json"), "c.json");
        let moved = dir.path().join("moved.json");
        move_durable(&p, &moved).unwrap();
        assert!(!p.exists() && moved.exists());
        // A writer that fails leaves neither the file nor a temporary.
        let q = dir.path().join("q.bin");
        let e = write_durable_with(&q, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(
            e.to_string().contains("q.bin") && e.to_string().contains("boom"),
            "{e}"
        );
        assert!(!q.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A copy of a missing file names the source.
        let e = copy_durable(&dir.path().join("nope"), &q).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn folders_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bundle");
        for content in ["old", "new"] {
            let staged = dir.path().join(".bundle.partial");
            std::fs::create_dir(&staged).unwrap();
            std::fs::write(staged.join("f"), content).unwrap();
            replace_dir(&staged, &dest).unwrap();
        }
        assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
