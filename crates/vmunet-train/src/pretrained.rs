//! Initial weights from an official VM-UNet or VMamba ImageNet checkpoint.

use std::path::Path;

use burn::tensor::backend::Backend;
use vmunet_model::{checkpoint, VmUnet};

use crate::TrainError;

pub use checkpoint::PretrainedReport;

/// Loads pretrained weights into `model` as the official `load_from` does
/// (see [`vmunet_model::checkpoint::load_pretrained`]).
pub fn load_pretrained<B: Backend>(
    model: VmUnet<B>,
    path: &Path,
    _device: &B::Device,
) -> Result<(VmUnet<B>, PretrainedReport), TrainError> {
    Ok(checkpoint::load_pretrained(model, path)?)
}
