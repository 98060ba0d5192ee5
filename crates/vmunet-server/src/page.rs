//! The page at `/` for the person beside the patient (compiled in: no build step, no files on
//! the device), and what it reads besides the protocol: the watch-folder service's records
//! and outputs, when one runs beside the server.

use std::path::Path;

use hyper::StatusCode;
use vmunet_deploy::service::ImageRecord;

use crate::ApiError;

/// The page: drop or take a photo, see the overlay, the lesion area and the model that made
/// it, download the mask and the record; recent results (the server's and the watch
/// folder's).
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// The page's Content-Security-Policy: its own inline script and style, images from itself,
/// data and blob URLs; nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'";

/// The newest `n` records the watch-folder service wrote into `dir` (`STEM.json` files that
/// read as its records), newest first. Unreadable files are skipped.
pub fn watch_records(dir: &Path, n: usize) -> Vec<ImageRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records: Vec<ImageRecord> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.') && name != "status.json"
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<ImageRecord>(&b).ok())
        .collect();
    records.sort_by(|a, b| b.finished.cmp(&a.finished));
    records.truncate(n);
    records
}

/// One output of the watch-folder service by file name: `*_mask.png`, `*_overlay.png` or a
/// record `*.json`; any other name (paths, hidden files, its state) is refused.
pub fn watch_file(dir: &Path, name: &str) -> Result<(&'static str, Vec<u8>), ApiError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && name != "status.json";
    let kind = if name.ends_with("_mask.png") || name.ends_with("_overlay.png") {
        "image/png"
    } else if name.ends_with(".json") {
        "application/json"
    } else {
        ""
    };
    if !plain || kind.is_empty() {
        return Err(ApiError::not_found(format!(
            "'{name}' is not an output of the watch folder"
        )));
    }
    std::fs::read(dir.join(name))
        .map(|b| (kind, b))
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ApiError::not_found(format!("no output '{name}' in the watch folder"))
            } else {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read '{name}': {e}"),
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outputs_are_served_from_the_watch_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a_mask.png"), b"png").unwrap();
        std::fs::write(dir.path().join("status.json"), b"{}").unwrap();
        assert_eq!(watch_file(dir.path(), "a_mask.png").unwrap().1, b"png");
        for bad in [
            "../a_mask.png",
            ".state",
            "status.json",
            "a.txt",
            "sub/a_mask.png",
        ] {
            assert_eq!(
                watch_file(dir.path(), bad).unwrap_err().status,
                StatusCode::NOT_FOUND,
                "{bad}"
            );
        }
        assert!(watch_records(dir.path(), 5).is_empty());
    }
}
