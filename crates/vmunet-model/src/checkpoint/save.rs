//! Writing the project's burnpack checkpoints (official key names, PyTorch layouts), durably.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot};

use super::error::CheckpointError;
use super::metadata::{self, CheckpointRecord, MODEL_KEY, MODEL_NAME};
use super::store::save_remaps;
use crate::VmUnet;

/// Saves the model as a burnpack record with official key names and PyTorch layouts,
/// durably (temporary file, fsync, rename, folder fsync).
pub fn save<B: Backend>(model: &VmUnet<B>, path: &Path) -> Result<(), CheckpointError> {
    save_recorded(model, path, &CheckpointRecord::default())
}

/// [`save`], also recording what the checkpoint knows of its training and past: the input
/// size (H = W) and preprocessing it was trained with, and what was done to the model
/// (compression steps, e.g. structured pruning, oldest first). Evaluation, export and
/// inference default to the size; the export copies the preprocessing and history into the
/// ONNX metadata.
pub fn save_recorded<B: Backend>(
    model: &VmUnet<B>,
    path: &Path,
    record: &CheckpointRecord,
) -> Result<(), CheckpointError> {
    let entries = metadata::entries(path, record)?;
    let mut store_error = None;
    let written = vmunet_fs::write_durable_with(path, |tmp| {
        let mut s = BurnpackStore::from_file(tmp)
            .with_to_adapter(BurnToPyTorchAdapter)
            .auto_extension(false)
            .overwrite(true)
            .metadata(MODEL_KEY, MODEL_NAME);
        for (key, value) in entries {
            s = s.metadata(key, value);
        }
        for (from, to) in save_remaps() {
            s = s.with_remap_pattern(from.as_str(), to.as_str());
        }
        model.save_into(&mut s).map_err(|e| {
            let message = e.to_string();
            store_error = Some(message.clone());
            std::io::Error::other(message)
        })
    });
    match (written, store_error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(message)) => Err(CheckpointError::Store {
            path: path.to_path_buf(),
            message,
        }),
        (Err(e), None) => Err(CheckpointError::Write {
            path: path.to_path_buf(),
            source: e.source,
        }),
    }
}
