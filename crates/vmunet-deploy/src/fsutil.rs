//! Durable file operations: write through a temporary file that is fsynced, renamed into
//! place and whose folder is fsynced, so a crash or power loss leaves either the old file or
//! the complete new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{failpoint, DeployError};

/// The suffix of vmunet's temporary files; [`remove_stale_temporaries`] removes them.
pub const TMP_SUFFIX: &str = ".vmunet-tmp";

/// The temporary file [`write_durable`] uses for `path`.
pub fn temporary_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()))
}

/// Fsyncs a folder (its entries: a rename into it becomes durable).
pub fn sync_dir(dir: &Path) -> Result<(), DeployError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(DeployError::io(dir))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` durably: temporary file in the same folder, fsync, rename, fsync
/// of the folder. On error the temporary file is removed and `path` is untouched.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    write_inner(path, bytes, false)
}

/// [`write_durable`] for the service's outputs (masks, overlays, records, reasons): the
/// `mid-write` crash point sits halfway through the temporary file.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    write_inner(path, bytes, true)
}

fn write_inner(path: &Path, bytes: &[u8], output: bool) -> Result<(), DeployError> {
    let tmp = temporary_for(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        if output && failpoint::is_armed("mid-write") {
            f.write_all(&bytes[..bytes.len() / 2])?;
            f.sync_all()?;
            failpoint::hit("mid-write");
            f.write_all(&bytes[bytes.len() / 2..])?;
        } else {
            f.write_all(bytes)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DeployError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    sync_dir(parent(path))
}

/// Copies `from` to `to` durably (as [`write_durable`], streaming), keeping the permission
/// bits.
pub fn copy_durable(from: &Path, to: &Path) -> Result<(), DeployError> {
    let tmp = temporary_for(to);
    let result = (|| -> std::io::Result<()> {
        std::fs::copy(from, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, to)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DeployError::Io {
            path: if std::fs::metadata(from).is_err() {
                from.to_path_buf()
            } else {
                to.to_path_buf()
            },
            source: e,
        });
    }
    sync_dir(parent(to))
}

/// Moves `from` to `to`: a rename on the same file system, else a durable copy and removal.
pub fn move_durable(from: &Path, to: &Path) -> Result<(), DeployError> {
    match std::fs::rename(from, to) {
        Ok(()) => {
            sync_dir(parent(to))?;
            sync_dir(parent(from))
        }
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another file system.
            copy_durable(from, to)?;
            std::fs::remove_file(from).map_err(DeployError::io(from))?;
            sync_dir(parent(from))
        }
        Err(e) => Err(DeployError::Io {
            path: from.to_path_buf(),
            source: e,
        }),
    }
}

/// Removes temporary files vmunet left in `dir` (a crash mid-write); returns how many.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, DeployError> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DeployError::io(dir)(e)),
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_file(e.path()).map_err(DeployError::io(e.path()))?;
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
        assert_eq!(free_name(dir.path(), "a.json"), "a.1.json");
        assert_eq!(free_name(dir.path(), "c.json"), "c.json");
        let moved = dir.path().join("moved.json");
        move_durable(&p, &moved).unwrap();
        assert!(!p.exists() && moved.exists());
    }
}
