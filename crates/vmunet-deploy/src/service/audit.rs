//! The audit log, `OUT/audit.jsonl`: one fsynced JSON line per image and outcome (what was
//! processed, by which model, with what result), never two for the same image and outcome
//! even when a crash comes between the audit line and the journal.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::journal::{self, ImageKey};
use crate::DeployError;

/// The open audit log and the (image, outcome) pairs it already has.
pub(super) struct AuditLog {
    file: std::fs::File,
    path: PathBuf,
    audited: HashSet<(ImageKey, String)>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` for appending; a torn last line (a crash
    /// mid-append) is cut off first.
    pub(super) fn open(path: &Path) -> Result<Self, DeployError> {
        journal::cut_torn_tail(path)?;
        let audited = journal::read_lines(path)?
            .into_iter()
            .filter_map(|v| {
                let f = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                Some((ImageKey::new(f("image")?, f("sha256")?), f("outcome")?))
            })
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(DeployError::io(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            audited,
        })
    }

    /// Appends `line` unless the log already has a line for this image and outcome.
    pub(super) fn append_once(
        &mut self,
        key: &ImageKey,
        outcome: &str,
        line: serde_json::Value,
    ) -> Result<(), DeployError> {
        let id = (key.clone(), outcome.to_string());
        if self.audited.contains(&id) {
            return Ok(());
        }
        let mut text = line.to_string();
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(DeployError::io(&self.path))?;
        self.audited.insert(id);
        Ok(())
    }
}
