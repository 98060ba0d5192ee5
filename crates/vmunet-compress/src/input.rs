//! The float32 export a compression starts from, and the preprocessing its calibration needs.

use std::path::{Path, PathBuf};

use vmunet_data::Preprocess;
use vmunet_onnx_ir::{InputSize, Model};
use vmunet_runtime::{ModelDim, ModelFile};

use crate::CompressError;

/// A model to compress.
#[derive(Debug, Clone)]
pub struct CompressInput {
    /// The file.
    pub path: PathBuf,
    /// The model.
    pub model: Model,
    /// The preprocessing calibration images get (the model's input size and channels).
    pub preprocess: Preprocess,
}

impl CompressInput {
    /// Reads `path`; `size` (H = W) is the size to calibrate a size-dynamic export at (default
    /// 256); a fixed-size export calibrates at its own size, and another `size` is an error.
    pub fn read(path: &Path, size: Option<usize>) -> Result<Self, CompressError> {
        let file = ModelFile::read(path)?;
        let model = Model::read(path)?;
        let channels = match file.input.dims.get(1) {
            Some(ModelDim::Fixed(c)) => *c,
            _ => 3,
        };
        let fixed = match file.metadata.input_size {
            Some(InputSize::Fixed { height, width }) => Some((height, width)),
            _ => match (file.input.dims.get(2), file.input.dims.get(3)) {
                (Some(ModelDim::Fixed(h)), Some(ModelDim::Fixed(w))) => Some((*h, *w)),
                _ => None,
            },
        };
        let (height, width) = match (fixed, size) {
            (Some((h, w)), Some(s)) if (h, w) != (s, s) => {
                return Err(CompressError::Options(format!(
                    "{}: the model takes {h}x{w} inputs, not --size {s}",
                    path.display()
                )))
            }
            (Some(hw), _) => hw,
            (None, Some(s)) => (s, s),
            (None, None) => (256, 256),
        };
        Ok(Self {
            path: path.to_path_buf(),
            model,
            preprocess: Preprocess {
                height,
                width,
                channels,
            },
        })
    }
}
