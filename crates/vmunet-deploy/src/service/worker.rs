//! The running service: what it holds while it works (model, journal, tracker, status board,
//! audit log, counts). Its work is in `recovery.rs` (at start) and `handle.rs` (per image).

use std::path::{Path, PathBuf};
use std::time::Instant;

use vmunet_runtime::{Runtime, Segmenter};

use super::audit::AuditLog;
use super::journal::Journal;
use super::log::Log;
use super::options::{ServeOptions, ServeSummary};
use super::record::ModelId;
use super::status::StatusBoard;
use super::watch::Tracker;
use crate::DeployError;

/// The service's state while it runs.
pub(super) struct Service<'a> {
    pub opts: &'a ServeOptions,
    pub seg: Segmenter,
    pub journal: Journal,
    pub tracker: Tracker,
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub failed_dir: PathBuf,
    pub model_file: String,
    pub model_sha: String,
    pub runtime: String,
    pub provider: String,
    pub summary: ServeSummary,
    pub first_arrival: Option<Instant>,
}

impl<'a> Service<'a> {
    /// The service over a loaded model, its journal and board; opens the audit log.
    pub fn new(
        opts: &'a ServeOptions,
        seg: Segmenter,
        journal: Journal,
        board: StatusBoard,
        failed_dir: &Path,
        model_sha: String,
    ) -> Result<Self, DeployError> {
        let runtime = seg.session().description();
        let provider = seg.session().provider().to_string();
        let audit = AuditLog::open(&opts.out.join("audit.jsonl"))?;
        Ok(Self {
            opts,
            seg,
            journal,
            tracker: Tracker::default(),
            board,
            audit,
            failed_dir: failed_dir.to_path_buf(),
            model_file: opts.model.display().to_string(),
            model_sha,
            runtime,
            provider,
            summary: ServeSummary::default(),
            first_arrival: None,
        })
    }

    /// Where log lines go.
    pub fn log(&self) -> Log {
        self.opts.log
    }

    /// The model, as audit lines and reason files name it.
    pub fn model_id(&self) -> ModelId<'_> {
        ModelId {
            file: &self.model_file,
            sha256: &self.model_sha,
        }
    }
}
