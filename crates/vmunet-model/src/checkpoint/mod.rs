//! Checkpoints: official PyTorch `.pth` (zip, legacy or tar), safetensors, and the project's
//! own burn record (burnpack, `.bpk`), all with the official key names and layouts.
//!
//! Loading infers the [`VmUnetConfig`] from tensor shapes, so any official checkpoint works
//! without a config file. Errors name the file and say exactly what does not match.
//!
//! One file per job: `format` sniffs the format ([`detect_format`]), `store` reads tensors
//! through burn-store with the official key names, `metadata` reads and writes the burnpack
//! metadata block (input size, compression history), `infer` infers the configuration
//! ([`infer_config`]), `pretrained` initialises from pretrained weights ([`load_pretrained`])
//! and `save` writes burnpack records ([`save`]); `error` holds [`CheckpointError`].

mod error;
mod format;
mod infer;
mod metadata;
mod pretrained;
mod save;
mod store;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use burn_store::{ApplyError, ApplyResult};
use vmunet_onnx_ir::CompressionStep;
use vmunet_scan::ScanBackend;

pub use error::{CheckpointError, ShapeMismatch};
pub use format::{detect_format, CheckpointFormat};
pub use infer::infer_config;
pub use metadata::CheckpointRecord;
pub use pretrained::{load_pretrained, PretrainedReport};
pub use save::{save, save_recorded};
pub use store::official_key;

use crate::{VmUnet, VmUnetConfig};

/// A checkpoint's format, tensor shapes (official keys, PyTorch layout) and inferred config.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// File.
    pub path: PathBuf,
    /// Format.
    pub format: CheckpointFormat,
    /// Official key (without `vmunet.`) -> shape.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Configuration inferred from the shapes.
    pub config: VmUnetConfig,
    /// Input size (H = W) the model was trained at, when the file records it (burnpack
    /// checkpoints written by `vmunet train`); evaluation, export and inference default to it.
    pub input_size: Option<usize>,
    /// The preprocessing of the training data, when the file records it (burnpack
    /// checkpoints written by `vmunet train` from Synapse or ISIC data).
    pub preprocessing: Option<vmunet_onnx_ir::Preprocessing>,
    /// What was done to the model (compression steps, e.g. structured pruning, oldest
    /// first); empty when the file records none.
    pub history: Vec<CompressionStep>,
}

impl CheckpointInfo {
    /// Total number of parameters stored.
    pub fn num_params(&self) -> usize {
        self.shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
}

/// Reads a checkpoint's tensor shapes and infers its configuration; a burnpack checkpoint's
/// recorded input size and compression history are read and checked too.
pub fn inspect(path: &Path) -> Result<CheckpointInfo, CheckpointError> {
    let format = detect_format(path)?;
    let shapes = store::read_shapes(path, format)?;
    if shapes.is_empty() {
        return Err(CheckpointError::NotVmUnet {
            path: path.to_path_buf(),
            detail: "the file holds no tensors".into(),
        });
    }
    let config = infer_config(&shapes).map_err(|detail| CheckpointError::NotVmUnet {
        path: path.to_path_buf(),
        detail,
    })?;
    config
        .validate()
        .map_err(|source| CheckpointError::Config {
            path: path.to_path_buf(),
            source,
        })?;
    let recorded = match format {
        CheckpointFormat::Burnpack => metadata::read(path, config.size_multiple())?,
        _ => metadata::CheckpointRecord::default(),
    };
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        format,
        shapes,
        config,
        input_size: recorded.input_size,
        preprocessing: recorded.preprocessing,
        history: recorded.history,
    })
}

/// Loads a checkpoint, inferring its configuration from the tensor shapes.
pub fn load<B: ScanBackend>(
    path: &Path,
    device: &B::Device,
) -> Result<(VmUnet<B>, CheckpointInfo), CheckpointError> {
    let info = inspect(path)?;
    let model = load_with_config(path, &info.config, device)?;
    Ok((model, info))
}

/// Loads a checkpoint into a model built from `config`; every key must match.
pub fn load_with_config<B: ScanBackend>(
    path: &Path,
    config: &VmUnetConfig,
    device: &B::Device,
) -> Result<VmUnet<B>, CheckpointError> {
    let format = detect_format(path)?;
    let mut model = config
        .init::<B>(device)
        .map_err(|source| CheckpointError::Config {
            path: path.to_path_buf(),
            source,
        })?;
    let mut store = store::open_store(path, format)?;
    let result = store.apply(path, &mut model)?;
    check_result(path, &result)?;
    Ok(model)
}

fn check_result(path: &Path, r: &ApplyResult) -> Result<(), CheckpointError> {
    let mut mismatches = Vec::new();
    for e in &r.errors {
        match e {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => mismatches.push(ShapeMismatch {
                key: official_key(key),
                expected: expected.to_vec(),
                found: found.to_vec(),
            }),
            other => {
                return Err(CheckpointError::Store {
                    path: path.to_path_buf(),
                    message: other.to_string(),
                })
            }
        }
    }
    if !mismatches.is_empty() {
        return Err(CheckpointError::Shapes {
            path: path.to_path_buf(),
            mismatches,
        });
    }
    // burn-store lists LayerNorm `weight`/`bias` as unused even when it applied them as
    // `gamma`/`beta`; only keys that reached no parameter are unexpected.
    let applied: HashSet<String> = r.applied.iter().map(|k| official_key(k)).collect();
    let unexpected: Vec<String> = r
        .unused
        .iter()
        .map(|k| official_key(k))
        .filter(|k| !applied.contains(k))
        .collect();
    if !r.missing.is_empty() || !unexpected.is_empty() {
        return Err(CheckpointError::Keys {
            path: path.to_path_buf(),
            missing: r.missing.iter().map(|(k, _)| official_key(k)).collect(),
            unexpected,
        });
    }
    Ok(())
}
