//! The training loop: AdamW + per-epoch cosine schedule, validation, checkpoints, resume.
//!
//! A run folder holds:
//! - `state.json`: the commit point of every epoch (config, epochs done, step, best, history);
//! - `checkpoints/epoch-NNNN.model.bin` + `.optim.bin`: model and optimizer after epoch NNNN in
//!   burn's own record format, which keeps the parameter ids the optimizer state refers to (the
//!   two most recent epochs are kept);
//! - `last.bpk`, `best.bpk` (lowest validation loss): loadable by every `--checkpoint` option;
//! - `metrics.csv`, `metrics.json`, `curves.png`.
//!
//! Every file is written durably (`vmunet-fs`: a temporary name, fsync, rename); `state.json` is
//! written after the epoch's checkpoint, so a run killed at any moment resumes from the last
//! committed epoch.
//! Randomness is a function of (seed, epoch): the shuffle, each sample's augmentation and the
//! backend seed (drop path) are derived from them, so a resumed run repeats exactly what the
//! uninterrupted run does.
//!
//! One file per step: `setup` (a new run or a resumed one, the model and optimizer to start
//! from), `epoch` (one epoch's training steps and validation), `run_files` (the run folder:
//! records, commit point, logs, pruning).

mod epoch;
mod observer;
mod run_files;
mod sets;
mod setup;
mod state;

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use vmunet_scan::ScanBackend;

pub use observer::{Observer, Silent};
pub use run_files::{read_state, write_logs};
pub use state::{EpochRecord, RunState};

use crate::{TrainConfig, TrainError};
use epoch::Epochs;
use run_files::RunFolder;
use sets::open_sets;

/// The outcome of [`train`].
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder.
    pub out: PathBuf,
    /// The final state.
    pub state: RunState,
}

/// Trains as `cfg` says; with `resume`, continues the run in `cfg.out` from its last committed
/// epoch (a new `epochs` / `max_steps` may extend it).
pub fn train<B>(
    cfg: TrainConfig,
    resume: bool,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError>
where
    B: AutodiffBackend + ScanBackend,
    B::InnerBackend: ScanBackend,
{
    let out = cfg.out.clone();
    let (mut state, cfg) = setup::start_or_resume(cfg, resume, &out)?;
    let kind = state.dataset;
    let loss = cfg.loss.unwrap_or(kind.default_loss());
    setup::check_classes(&cfg, loss)?;
    // The trained size is recorded in best.bpk / last.bpk: evaluation, export and inference
    // default to it.
    let folder = RunFolder::create(&out, Some(cfg.size_for(kind)), kind.preprocessing())?;
    let (train_set, val_set) = open_sets(&cfg, kind)?;
    if train_set.is_empty() {
        return Err(TrainError::Run {
            path: cfg.data.clone(),
            reason: "the training split is empty".into(),
        });
    }

    // Model and optimizer.
    B::seed(device, cfg.seed);
    let mut model = setup::initial_model::<B>(&cfg, &folder, state.epochs_done, device)?;
    let mut optim = setup::optimizer::<B>(&cfg, &folder, state.epochs_done, device)?;

    let batch_size = cfg.batch_size.min(train_set.len());
    let epochs = Epochs::<B> {
        cfg: &cfg,
        train_set,
        val_set,
        loss,
        batch_size,
        device,
    };
    for epoch in state.epochs_done..cfg.epochs {
        if cfg.max_steps.is_some_and(|m| state.global_step >= m) {
            break;
        }
        let (trained, record) =
            epochs.run(model, &mut optim, &mut state.global_step, epoch, observer)?;
        model = trained;
        let improved = match (record.val_loss, state.best) {
            (Some(v), Some((_, b))) => v < b,
            (Some(_), None) => true,
            _ => false,
        };
        // Checkpoint, then commit.
        folder.commit_epoch(&model, &optim, &mut state, &record, improved)?;
        observer.epoch_end(&record, improved);
    }
    Ok(RunSummary { out, state })
}
