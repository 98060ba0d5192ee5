//! What the service does at start after a crash (`kill -9`, power loss): temporary files of
//! the crashed run are removed, a torn journal line is cut off, and every image the journal
//! left `started` is settled: found complete (its record names its SHA-256: `done` is
//! appended, nothing is redone), found moved to `failed/`, found gone, or left to be processed
//! again from scratch into the same names.

use std::path::Path;

use serde_json::json;
use vmunet_data::output_stem;
use vmunet_fs::{remove_stale_temporaries, sha256_file};
use vmunet_runtime::OutputNames;

use super::journal::{Event, ImageKey, Journal};
use super::log::Log;
use super::record::{done_audit_line, recovered_failed_audit_line, ImageRecord};
use super::worker::Service;
use crate::DeployError;

/// Removes the temporary files a crashed run left in `dirs` and opens the journal at
/// `journal_path` (cutting off a torn last line); says so when there was anything to repair.
pub(super) fn open_after_crash(
    dirs: &[&Path],
    journal_path: &Path,
    log: Log,
) -> Result<Journal, DeployError> {
    let mut removed = 0;
    for d in dirs {
        removed += remove_stale_temporaries(d)?;
    }
    let journal = Journal::open(journal_path)?;
    if journal.repaired_bytes > 0 || removed > 0 {
        log.warn(
            "recovering from an interrupted run",
            json!({"torn_journal_bytes": journal.repaired_bytes, "temporary_files_removed": removed}),
        );
    }
    Ok(journal)
}

impl Service<'_> {
    /// Settles images a crash left `started`: complete outputs get their `done`, a failed
    /// image already moved gets its `failed`, a vanished one is recorded as such; the rest
    /// are processed again when the folder is listed.
    pub(super) fn recover(&mut self) -> Result<(), DeployError> {
        for (key, stem) in self.journal.in_progress() {
            let stem = stem.unwrap_or_else(|| output_stem(Path::new(&key.name)));
            if let Some(record) = self.complete_record(&stem, &key.sha256) {
                self.recover_done(&key, &stem, &record)?;
                continue;
            }
            let input = self.opts.watch.join(&key.name);
            let moved = self.failed_dir.join(&key.name);
            let same_content =
                |p: &Path| sha256_file(p).ok().as_deref() == Some(key.sha256.as_str());
            if !input.exists() && moved.exists() && same_content(&moved) {
                let line = recovered_failed_audit_line(&key, &self.model_sha);
                self.audit.append_once(&key, "failed", line)?;
                self.journal
                    .append(Event::Failed, &key, None, Some("recovered"))?;
                continue;
            }
            if !input.exists() || !same_content(&input) {
                self.journal.append(
                    Event::Failed,
                    &key,
                    None,
                    Some("the image left the watched folder before it was processed"),
                )?;
                self.log().warn(
                    "an interrupted image is gone from the folder",
                    json!({"image": key.name}),
                );
            }
        }
        Ok(())
    }

    /// An interrupted image whose outputs are complete: its audit line and `done`.
    fn recover_done(
        &mut self,
        key: &ImageKey,
        stem: &str,
        record: &ImageRecord,
    ) -> Result<(), DeployError> {
        self.audit
            .append_once(key, "done", done_audit_line(key, stem, record, true))?;
        self.journal
            .append(Event::Done, key, Some(stem), Some("recovered"))?;
        self.summary.recovered += 1;
        self.log().info(
            "recovered: outputs were complete",
            json!({"image": key.name, "sha256": key.sha256}),
        );
        Ok(())
    }

    /// The record of `stem` when it names `sha` and both images are in place (the record is
    /// written last, so this means the outputs are complete).
    fn complete_record(&self, stem: &str, sha: &str) -> Option<ImageRecord> {
        let out = &self.opts.out;
        let names = OutputNames::new(stem);
        let record: ImageRecord = std::fs::read(out.join(names.record()))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())?;
        (record.sha256 == sha
            && out.join(names.mask()).is_file()
            && out.join(names.overlay()).is_file())
        .then_some(record)
    }
}
