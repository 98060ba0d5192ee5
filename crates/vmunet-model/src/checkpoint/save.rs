//! Writing the project's burnpack checkpoints (official key names, PyTorch layouts), durably.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot};
use vmunet_onnx_ir::CompressionStep;

use super::error::CheckpointError;
use super::metadata::{self, MODEL_KEY, MODEL_NAME};
use super::store::save_remaps;
use crate::VmUnet;

/// Saves the model as a burnpack record with official key names and PyTorch layouts,
/// durably (temporary file, fsync, rename, folder fsync).
pub fn save<B: Backend>(model: &VmUnet<B>, path: &Path) -> Result<(), CheckpointError> {
    save_with_input_size(model, path, None)
}

/// [`save`], recording the input size (H = W) the model was trained at
/// ([`CheckpointInfo::input_size`](crate::checkpoint::CheckpointInfo::input_size)).
pub fn save_with_input_size<B: Backend>(
    model: &VmUnet<B>,
    path: &Path,
    input_size: Option<usize>,
) -> Result<(), CheckpointError> {
    save_with_history(model, path, input_size, &[])
}

/// [`save_with_input_size`], also recording what was done to the model (compression steps,
/// e.g. structured pruning, oldest first; nothing is recorded for an empty list;
/// [`CheckpointInfo::history`](crate::checkpoint::CheckpointInfo::history)). The export
/// copies it into the ONNX metadata.
pub fn save_with_history<B: Backend>(
    model: &VmUnet<B>,
    path: &Path,
    input_size: Option<usize>,
    history: &[CompressionStep],
) -> Result<(), CheckpointError> {
    let entries = metadata::entries(path, input_size, history)?;
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
