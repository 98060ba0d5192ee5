//! Progress reports of the training loop (progress bars live in the binary).

use super::state::EpochRecord;

/// What the loop reports while it runs (progress bars live in the binary).
pub trait Observer {
    /// An epoch of `steps` optimizer steps starts.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize, _lr: f64) {}
    /// One optimizer step finished.
    fn step(&mut self, _step_in_epoch: usize, _loss: f64, _images_per_s: f64) {}
    /// Validation starts over `batches` batches.
    fn validation_start(&mut self, _batches: usize) {}
    /// An epoch ended (checkpoint committed).
    fn epoch_end(&mut self, _record: &EpochRecord, _best: bool) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}
