//! The training configuration (`train.toml`): the paper's recipe by default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vmunet_model::VmUnetConfig;

use crate::TrainError;

/// Which dataset layout a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Detect from the folder: `train/images` means ISIC, `train_npz` means Synapse.
    #[default]
    Auto,
    /// ISIC 2017 / 2018 layout (binary lesion masks).
    Isic,
    /// Synapse in TransUNet's preprocessed format (9 classes).
    Synapse,
}

impl DatasetKind {
    /// Resolves [`DatasetKind::Auto`] by looking at `dir`.
    pub fn resolve(self, dir: &Path) -> Result<DatasetKind, TrainError> {
        match self {
            DatasetKind::Auto if dir.join("train").join("images").is_dir() => Ok(DatasetKind::Isic),
            DatasetKind::Auto if dir.join("train_npz").is_dir() => Ok(DatasetKind::Synapse),
            DatasetKind::Auto => Err(TrainError::Run {
                path: dir.to_path_buf(),
                reason: "not a dataset folder: expected train/images + val/images (ISIC layout) \
                         or train_npz + test_vol_h5 + lists/lists_Synapse (Synapse layout)"
                    .into(),
            }),
            k => Ok(k),
        }
    }

    /// The preprocessing of this dataset's images, recorded in the checkpoints trained on it
    /// (a resolved kind; `Auto` reads as ISIC).
    pub fn preprocessing(self) -> vmunet_onnx_ir::Preprocessing {
        match self {
            DatasetKind::Synapse => vmunet_onnx_ir::Preprocessing::Synapse,
            _ => vmunet_onnx_ir::Preprocessing::Isic,
        }
    }

    /// The loss the paper uses for this dataset.
    pub fn default_loss(self) -> LossKind {
        match self {
            DatasetKind::Synapse => LossKind::CeDice,
            _ => LossKind::BceDice,
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// BCE + Dice on the sigmoid output (binary; lambda1 = lambda2 = 1).
    BceDice,
    /// 0.4 cross-entropy + 0.6 soft Dice over classes (multi-class).
    CeDice,
}

/// The `[model]` table: [`VmUnetConfig`]'s fields, each optional (the paper's values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Input channels.
    pub input_channels: usize,
    /// Output classes (1: sigmoid, ISIC; 9: Synapse).
    pub num_classes: usize,
    /// Channels of the four stages.
    pub dims: Vec<usize>,
    /// Encoder blocks per stage.
    pub depths: Vec<usize>,
    /// Decoder blocks per stage (deepest first).
    pub depths_decoder: Vec<usize>,
    /// SSM state size.
    pub d_state: usize,
    /// Depthwise convolution kernel.
    pub d_conv: usize,
    /// SS2D expansion.
    pub ssm_expand: usize,
    /// dt rank (ceil(C / 16) when unset).
    pub dt_rank: Option<usize>,
    /// Patch size.
    pub patch_size: usize,
    /// Stochastic depth rate (spread linearly over the blocks).
    pub drop_path_rate: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Per-block SS2D widths of a structurally pruned model (taken from an `init` checkpoint
    /// that has them).
    pub block_widths: Option<Vec<vmunet_model::BlockWidth>>,
}

impl Default for ModelSection {
    fn default() -> Self {
        let c = VmUnetConfig::paper(1);
        Self {
            input_channels: c.input_channels,
            num_classes: c.num_classes,
            dims: c.dims,
            depths: c.depths,
            depths_decoder: c.depths_decoder,
            d_state: c.d_state,
            d_conv: c.d_conv,
            ssm_expand: c.ssm_expand,
            dt_rank: c.dt_rank,
            patch_size: c.patch_size,
            drop_path_rate: c.drop_path_rate,
            layer_norm_eps: c.layer_norm_eps,
            block_widths: None,
        }
    }
}

impl ModelSection {
    /// The model configuration.
    pub fn config(&self) -> VmUnetConfig {
        VmUnetConfig::new()
            .with_input_channels(self.input_channels)
            .with_num_classes(self.num_classes)
            .with_dims(self.dims.clone())
            .with_depths(self.depths.clone())
            .with_depths_decoder(self.depths_decoder.clone())
            .with_d_state(self.d_state)
            .with_d_conv(self.d_conv)
            .with_ssm_expand(self.ssm_expand)
            .with_dt_rank(self.dt_rank)
            .with_patch_size(self.patch_size)
            .with_drop_path_rate(self.drop_path_rate)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_block_widths(self.block_widths.clone())
    }

    /// Takes the architecture of `c` (a checkpoint's), keeping the stochastic depth rate.
    pub fn adopt(&mut self, c: &VmUnetConfig) {
        let drop_path_rate = self.drop_path_rate;
        *self = Self {
            input_channels: c.input_channels,
            num_classes: c.num_classes,
            dims: c.dims.clone(),
            depths: c.depths.clone(),
            depths_decoder: c.depths_decoder.clone(),
            d_state: c.d_state,
            d_conv: c.d_conv,
            ssm_expand: c.ssm_expand,
            dt_rank: c.dt_rank,
            patch_size: c.patch_size,
            drop_path_rate,
            layer_norm_eps: c.layer_norm_eps,
            block_widths: c.block_widths.clone(),
        };
    }
}

/// Everything a run needs; every field has the paper's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The dataset folder.
    pub data: PathBuf,
    /// The dataset layout.
    pub dataset: DatasetKind,
    /// The run folder (checkpoints, logs, plots).
    pub out: PathBuf,
    /// Input size (square): 256 for ISIC, 224 for Synapse when unset.
    pub image_size: Option<usize>,
    /// Epochs.
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Stop after this many optimizer steps in all (the epoch in progress then ends early).
    pub max_steps: Option<usize>,
    /// Use at most this many validation images (all when unset).
    pub max_val_images: Option<usize>,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW betas.
    pub betas: [f64; 2],
    /// AdamW epsilon.
    pub eps: f64,
    /// AdamW (decoupled) weight decay.
    pub weight_decay: f64,
    /// CosineAnnealingLR period in epochs.
    pub t_max: usize,
    /// CosineAnnealingLR floor.
    pub eta_min: f64,
    /// The loss (the dataset's paper loss when unset).
    pub loss: Option<LossKind>,
    /// Seed of every random choice (shuffle, augmentation, drop path, initial weights).
    pub seed: u64,
    /// Threads decoding and augmenting images.
    pub workers: usize,
    /// Validate every this many epochs (and always after the last).
    pub val_every: usize,
    /// Foreground threshold for the ISIC metrics.
    pub threshold: f64,
    /// Initial weights: an official VM-UNet checkpoint, a checkpoint of this tool, or a
    /// VMamba ImageNet `.pth` (encoder copied, decoder from `layers.3..0`).
    pub init: Option<PathBuf>,
    /// The architecture.
    pub model: ModelSection,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            dataset: DatasetKind::Auto,
            out: PathBuf::from("runs/vmunet"),
            image_size: None,
            epochs: 300,
            batch_size: 32,
            max_steps: None,
            max_val_images: None,
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 1e-2,
            t_max: 50,
            eta_min: 1e-5,
            loss: None,
            seed: 42,
            workers: 2,
            val_every: 1,
            threshold: 0.5,
            init: None,
            model: ModelSection::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::Config {
            origin: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Checks ranges; `origin` names the file or option in the error.
    pub fn validate(&self, origin: &str) -> Result<(), TrainError> {
        let bad = |reason: String| {
            Err(TrainError::Config {
                origin: origin.to_string(),
                reason,
            })
        };
        if self.data.as_os_str().is_empty() {
            return bad("no dataset folder: set `data` or pass --data DIR".into());
        }
        if self.epochs == 0 || self.batch_size == 0 || self.val_every == 0 {
            return bad("epochs, batch_size and val_every must be at least 1".into());
        }
        if self.max_steps == Some(0) {
            return bad("max_steps must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..=self.lr).contains(&self.eta_min)) {
            return bad(format!(
                "need lr > 0 and 0 <= eta_min <= lr (lr = {}, eta_min = {})",
                self.lr, self.eta_min
            ));
        }
        if self.t_max == 0 {
            return bad("t_max must be at least 1".into());
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) || self.eps <= 0.0 {
            return bad("betas must lie in [0, 1) and eps be positive".into());
        }
        if self.weight_decay < 0.0 || !(0.0..1.0).contains(&self.threshold) {
            return bad("weight_decay must be >= 0 and threshold in (0, 1)".into());
        }
        let model = self.model.config();
        model.validate().map_err(TrainError::Model)?;
        if let Some(s) = self.image_size {
            let m = model.size_multiple();
            if s == 0 || s % m != 0 {
                return bad(format!("image_size {s} must be a positive multiple of {m}"));
            }
        }
        Ok(())
    }

    /// The input size for `kind`.
    pub fn size_for(&self, kind: DatasetKind) -> usize {
        self.image_size.unwrap_or(match kind {
            DatasetKind::Synapse => 224,
            _ => 256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_recipe() {
        let c = TrainConfig::default();
        assert_eq!((c.epochs, c.batch_size, c.t_max), (300, 32, 50));
        assert_eq!((c.lr, c.weight_decay, c.eta_min), (1e-3, 1e-2, 1e-5));
        assert_eq!(c.betas, [0.9, 0.999]);
        assert_eq!(c.model.dims, vec![96, 192, 384, 768]);
        assert_eq!(c.model.drop_path_rate, 0.2);
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let c: TrainConfig =
            toml::from_str("data = \"d\"\nepochs = 3\n[model]\ndims = [8, 16, 32, 64]\n").unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.model.dims, vec![8, 16, 32, 64]);
        assert_eq!(c.batch_size, 32);
        assert!(toml::from_str::<TrainConfig>("epoch = 3").is_err());
    }

    #[test]
    fn validation_names_the_origin() {
        let c = TrainConfig {
            data: "d".into(),
            lr: -1.0,
            ..TrainConfig::default()
        };
        let e = c.validate("train.toml").unwrap_err().to_string();
        assert!(e.starts_with("train.toml: need lr > 0"), "{e}");
    }
}
