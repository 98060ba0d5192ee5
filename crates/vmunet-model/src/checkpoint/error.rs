//! What can go wrong with a checkpoint; every error names the file.

use std::path::{Path, PathBuf};

use crate::ModelError;

/// One tensor whose shape differs from what the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Official key.
    pub key: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape in the file.
    pub found: Vec<usize>,
}

/// Checkpoint errors; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be read.
    #[error("{path}: cannot read checkpoint: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file cannot be written.
    #[error("{path}: cannot write checkpoint: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file ends before its declared contents.
    #[error("{path}: checkpoint is truncated or corrupted ({detail})")]
    Truncated {
        /// File.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The file is not in any supported checkpoint format.
    #[error("{path}: not a checkpoint ({detail}); expected a PyTorch .pth, a .safetensors or a .bpk file")]
    NotACheckpoint {
        /// File.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Keys that identify VM-UNet are absent or inconsistent.
    #[error("{path}: not a VM-UNet checkpoint: {detail}")]
    NotVmUnet {
        /// File.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The compression history the file records is not a JSON list of compression steps.
    #[error("{path}: unreadable compression history: {source}")]
    History {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// Keys do not match the model.
    #[error("{path}: checkpoint keys do not match the model:{}{}", list("missing", .missing), list("unexpected", .unexpected))]
    Keys {
        /// File.
        path: PathBuf,
        /// Expected by the model, absent in the file.
        missing: Vec<String>,
        /// In the file, unknown to the model.
        unexpected: Vec<String>,
    },
    /// Tensor shapes do not match the model.
    #[error("{path}: tensor shapes do not match the model:{}", shapes(.mismatches))]
    Shapes {
        /// File.
        path: PathBuf,
        /// Each mismatch.
        mismatches: Vec<ShapeMismatch>,
    },
    /// The inferred or given configuration is invalid.
    #[error("{path}: {source}")]
    Config {
        /// File.
        path: PathBuf,
        /// Cause.
        source: ModelError,
    },
    /// Other errors from the storage layer.
    #[error("{path}: {message}")]
    Store {
        /// File.
        path: PathBuf,
        /// Message from burn-store.
        message: String,
    },
}

/// A closure for `map_err` that turns an I/O error on `path` into [`CheckpointError::Io`].
pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn list(what: &str, keys: &[String]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    const SHOW: usize = 20;
    let mut s = format!("\n  {what} ({}):", keys.len());
    for k in keys.iter().take(SHOW) {
        s.push_str("\n    ");
        s.push_str(k);
    }
    if keys.len() > SHOW {
        s.push_str(&format!("\n    ... and {} more", keys.len() - SHOW));
    }
    s
}

fn shapes(m: &[ShapeMismatch]) -> String {
    m.iter()
        .map(|m| {
            format!(
                "\n  {}: expected {:?}, found {:?}",
                m.key, m.expected, m.found
            )
        })
        .collect()
}
