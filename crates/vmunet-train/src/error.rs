//! Training errors; each names the file or setting at fault.

use std::path::PathBuf;

/// Errors of training and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data file or folder is missing or malformed.
    #[error(transparent)]
    Data(#[from] vmunet_data::DataError),
    /// A checkpoint cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] vmunet_model::checkpoint::CheckpointError),
    /// The model configuration is invalid.
    #[error("model configuration: {0}")]
    Model(#[from] vmunet_model::ModelError),
    /// An exported model failed in its runtime.
    #[error(transparent)]
    Runtime(#[from] vmunet_runtime::RuntimeError),
    /// A metric cannot be computed (shape mismatch).
    #[error("metrics: {0}")]
    Metrics(#[from] vmunet_metrics::MetricsError),
    /// The training configuration is invalid.
    #[error("{origin}: {reason}")]
    Config {
        /// The config file or command-line option.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A run folder cannot be used as asked.
    #[error("{path}: {reason}")]
    Run {
        /// The run folder or one of its files.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A batch failed to load (the message names the file).
    #[error("{0}")]
    Batch(String),
    /// The loss became NaN or infinite.
    #[error("the training loss is {value} at epoch {epoch}, step {step}: lower the learning rate or check the data")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Global step.
        step: usize,
        /// The loss value.
        value: f64,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<vmunet_fs::FsError> for TrainError {
    fn from(e: vmunet_fs::FsError) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}
