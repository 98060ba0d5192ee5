//! Training VM-UNet on burn with the paper's recipe.
//!
//! - [`TrainConfig`]: AdamW (lr 1e-3, betas 0.9/0.999, weight decay 1e-2), CosineAnnealingLR
//!   (T_max 50, eta_min 1e-5, per epoch), batch 32, 300 epochs, drop path 0.2 (linear over the
//!   blocks), read from `train.toml` with command-line overrides in the binary;
//! - [`loss`]: BceDice (ISIC) and CeDice (Synapse) as the official `utils.py`;
//! - [`train`]: the loop, with checkpoints every epoch, best by validation loss, exact resume;
//! - [`eval`]: validation and the paper's tables (ISIC pooled metrics, Synapse DSC / HD95).
//!
//! The loop is backend-generic: ndarray on the CPU (the scan's host kernel and its backward),
//! burn-wgpu / burn-cuda with the CubeCL scan kernel.

#![deny(missing_docs)]

mod backend;
mod config;
pub mod data;
mod error;
pub mod eval;
pub mod loss;
mod overrides;
mod schedule;
mod summary;
mod train;

pub use backend::{train_on, Backend};
pub use config::{DatasetKind, LossKind, ModelSection, TrainConfig};
pub use error::TrainError;
pub use overrides::TrainOverrides;
pub use schedule::cosine_lr;
pub use train::{
    read_state, train, write_logs, EpochRecord, Observer, RunState, RunSummary, Silent,
};
