//! Command-line overrides of a training configuration: each one given replaces the file's (or
//! the paper's) value.

use std::path::{Path, PathBuf};

use crate::{TrainConfig, TrainError};

/// Settings that override a [`TrainConfig`] (usable as command-line arguments with the `clap`
/// feature).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainOverrides {
    /// Dataset folder (ISIC layout or Synapse npz/h5 layout).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: Option<PathBuf>,
    /// Run folder: checkpoints (last.bpk, best.bpk), metrics.csv/json, curves.png.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Epochs.
    #[cfg_attr(feature = "clap", arg(long))]
    pub epochs: Option<usize>,
    /// Images per step.
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch_size: Option<usize>,
    /// Channel widths of the four stages, e.g. 16,32,64,128 (the paper: 96,192,384,768).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub dims: Option<Vec<usize>>,
    /// Input size (square; default 256 for ISIC, 224 for Synapse).
    #[cfg_attr(feature = "clap", arg(long))]
    pub image_size: Option<usize>,
    /// Stop after this many optimizer steps in all.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_steps: Option<usize>,
    /// Validate on at most this many images.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_val_images: Option<usize>,
    /// Learning rate.
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr: Option<f64>,
    /// Seed of every random choice.
    #[cfg_attr(feature = "clap", arg(long))]
    pub seed: Option<u64>,
    /// Threads decoding and augmenting images.
    #[cfg_attr(feature = "clap", arg(long))]
    pub workers: Option<usize>,
    /// Initial weights: official VM-UNet or VMamba ImageNet .pth, or a vmunet checkpoint.
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: Option<PathBuf>,
}

impl TrainConfig {
    /// The configuration in `file` (the paper's defaults without one) with `overrides`
    /// applied.
    pub fn with_overrides(
        file: Option<&Path>,
        overrides: &TrainOverrides,
    ) -> Result<Self, TrainError> {
        let mut c = match file {
            Some(p) => TrainConfig::from_file(p)?,
            None => TrainConfig::default(),
        };
        let o = overrides.clone();
        c.data = o.data.unwrap_or(c.data);
        c.out = o.out.unwrap_or(c.out);
        c.epochs = o.epochs.unwrap_or(c.epochs);
        c.batch_size = o.batch_size.unwrap_or(c.batch_size);
        c.model.dims = o.dims.unwrap_or(c.model.dims);
        c.image_size = o.image_size.or(c.image_size);
        c.max_steps = o.max_steps.or(c.max_steps);
        c.max_val_images = o.max_val_images.or(c.max_val_images);
        c.lr = o.lr.unwrap_or(c.lr);
        c.seed = o.seed.unwrap_or(c.seed);
        c.workers = o.workers.unwrap_or(c.workers);
        c.init = o.init.or(c.init);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_overrides_replace_the_defaults_and_the_rest_stay() {
        let o = TrainOverrides {
            epochs: Some(3),
            dims: Some(vec![16, 32, 64, 128]),
            image_size: Some(96),
            ..Default::default()
        };
        let c = TrainConfig::with_overrides(None, &o).unwrap();
        let d = TrainConfig::default();
        assert_eq!((c.epochs, c.image_size), (3, Some(96)));
        assert_eq!(c.model.dims, vec![16, 32, 64, 128]);
        assert_eq!((c.batch_size, c.lr, c.seed), (d.batch_size, d.lr, d.seed));
    }
}
