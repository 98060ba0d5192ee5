//! What a run records: one [`EpochRecord`] per epoch and the committed [`RunState`].

use serde::{Deserialize, Serialize};
use vmunet_metrics::BinaryMetrics;

use crate::{DatasetKind, TrainConfig};

/// One epoch's record in the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Optimizer steps taken in the epoch.
    pub steps: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Validation metrics (pooled confusion matrix; for Synapse slices, the foreground
    /// classes pooled), when validated.
    pub val: Option<BinaryMetrics>,
    /// Wall time of the epoch (training and validation), seconds.
    pub seconds: f64,
    /// Training throughput, images per second.
    pub images_per_s: f64,
}

/// The committed state of a run (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The configuration the run started with (epochs and max_steps may grow on resume).
    pub config: TrainConfig,
    /// Dataset layout.
    pub dataset: DatasetKind,
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimizer steps so far.
    pub global_step: usize,
    /// Best epoch and its validation loss.
    pub best: Option<(usize, f64)>,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
}
