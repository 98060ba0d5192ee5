//! Initialisation from pretrained weights, the way the official `VMUNet.load_from` does it.

use std::collections::BTreeSet;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::ApplyError;

use super::error::{CheckpointError, ShapeMismatch};
use super::format::detect_format;
use super::store::{official_key, open_store_with, read_shapes};
use crate::VmUnet;

/// What [`load_pretrained`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedReport {
    /// `true` for a whole VM-UNet checkpoint, `false` for a VMamba (encoder) checkpoint.
    pub whole_model: bool,
    /// Parameters copied (the decoder copies of VMamba stages counted again).
    pub copied: usize,
    /// Checkpoint keys whose shape differs from the model's, left at their initial values.
    pub skipped: Vec<ShapeMismatch>,
    /// Model parameters the checkpoint does not provide.
    pub missing: usize,
}

/// Initialises `model` from pretrained weights the way the official `VMUNet.load_from` does:
/// a whole VM-UNet checkpoint is loaded as is (every shape must match); a VMamba ImageNet
/// checkpoint (keys `patch_embed.*`, `layers.i.*`) fills the encoder, then `layers.0..3` fill
/// the decoder stages `layers_up.3..0`. Keys the model lacks are ignored, as there.
pub fn load_pretrained<B: Backend>(
    mut model: VmUnet<B>,
    path: &Path,
) -> Result<(VmUnet<B>, PretrainedReport), CheckpointError> {
    let format = detect_format(path)?;
    let shapes = read_shapes(path, format)?;
    let whole = shapes.keys().any(|k| k.contains("layers_up."));
    let stages = model.layers.len();
    let mut passes: Vec<Vec<(String, String)>> = vec![vec![]];
    if !whole {
        passes.push(
            (0..stages)
                .map(|i| {
                    (
                        format!(r"^layers\.{i}\."),
                        format!("layers_up.{}.", stages - 1 - i),
                    )
                })
                .collect(),
        );
    }
    let mut report = PretrainedReport {
        whole_model: whole,
        copied: 0,
        skipped: Vec::new(),
        missing: 0,
    };
    let mut missing = BTreeSet::new();
    for (i, extra) in passes.iter().enumerate() {
        let mut store = open_store_with(path, format, extra)?;
        let r = store.apply(path, &mut model)?;
        report.copied += r.applied.len();
        for e in &r.errors {
            if let ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } = e
            {
                report.skipped.push(ShapeMismatch {
                    key: official_key(key),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                });
            }
        }
        let these: BTreeSet<String> = r.missing.iter().map(|(k, _)| k.clone()).collect();
        missing = if i == 0 {
            these
        } else {
            missing.intersection(&these).cloned().collect()
        };
    }
    if whole && !report.skipped.is_empty() {
        return Err(CheckpointError::Shapes {
            path: path.to_path_buf(),
            mismatches: report.skipped,
        });
    }
    if report.copied == 0 {
        return Err(CheckpointError::NotVmUnet {
            path: path.to_path_buf(),
            detail: "no key matches a VM-UNet or VMamba parameter".into(),
        });
    }
    report.missing = missing.len();
    Ok((model, report))
}
