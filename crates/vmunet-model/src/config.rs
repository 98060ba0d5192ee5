//! The architecture's single description.

use burn::config::Config;
use vmunet_scan::ScanBackend;

use crate::{ModelError, VmUnet};

/// The SS2D widths of one VSS block after structured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockWidth {
    /// Inner channels (`d_inner`).
    pub d_inner: usize,
    /// State size (`d_state`).
    pub d_state: usize,
}

/// VM-UNet hyper-parameters. Defaults are the paper's configuration (27,427,561 parameters
/// for one class).
#[derive(Config, Debug, PartialEq)]
pub struct VmUnetConfig {
    /// Input image channels (a 1-channel image is repeated when this is 3, as officially).
    #[config(default = 3)]
    pub input_channels: usize,
    /// Output classes; 1 means a sigmoid (binary) head.
    #[config(default = 1)]
    pub num_classes: usize,
    /// Encoder widths per stage; the decoder uses them reversed.
    #[config(default = "vec![96, 192, 384, 768]")]
    pub dims: Vec<usize>,
    /// VSS blocks per encoder stage.
    #[config(default = "vec![2, 2, 2, 2]")]
    pub depths: Vec<usize>,
    /// VSS blocks per decoder stage (deepest first).
    #[config(default = "vec![2, 2, 2, 1]")]
    pub depths_decoder: Vec<usize>,
    /// SSM state size N.
    #[config(default = 16)]
    pub d_state: usize,
    /// Depthwise convolution kernel size inside SS2D.
    #[config(default = 3)]
    pub d_conv: usize,
    /// SS2D inner width factor: d_inner = ssm_expand * C.
    #[config(default = 2)]
    pub ssm_expand: usize,
    /// Rank of the delta projection; `None` is the official `ceil(C / 16)` per stage.
    #[config(default = "None")]
    pub dt_rank: Option<usize>,
    /// Patch-embedding stride and kernel.
    #[config(default = 4)]
    pub patch_size: usize,
    /// Stochastic depth rate (training only), spread linearly over the blocks.
    #[config(default = 0.2)]
    pub drop_path_rate: f64,
    /// Epsilon of every LayerNorm.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Per-block SS2D widths of a structurally pruned model, encoder blocks then decoder
    /// blocks in checkpoint order (`layers.i.blocks.b`, then `layers_up.i.blocks.b`); `None`:
    /// every block has `ssm_expand * C` inner channels and `d_state` states.
    #[config(default = "None")]
    pub block_widths: Option<Vec<BlockWidth>>,
}

/// Shape summary of one stage, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageShape {
    /// `encoder.i` or `decoder.i`.
    pub name: String,
    /// Channels inside the stage.
    pub channels: usize,
    /// Spatial size inside the stage.
    pub height: usize,
    /// Spatial size inside the stage.
    pub width: usize,
    /// Number of VSS blocks.
    pub blocks: usize,
    /// SS2D d_inner.
    pub d_inner: usize,
    /// Delta projection rank.
    pub dt_rank: usize,
}

impl VmUnetConfig {
    /// The paper's configuration with `num_classes` outputs.
    pub fn paper(num_classes: usize) -> Self {
        Self::new().with_num_classes(num_classes)
    }

    /// The narrow variant used by the official-small fixtures (dims 24..192).
    pub fn small(num_classes: usize) -> Self {
        Self::new()
            .with_num_classes(num_classes)
            .with_dims(vec![24, 48, 96, 192])
    }

    /// Number of encoder (= decoder) stages.
    pub fn num_stages(&self) -> usize {
        self.dims.len()
    }

    /// Decoder widths (encoder widths reversed).
    pub fn dims_decoder(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Delta rank for a block of width `c`.
    pub fn dt_rank_for(&self, c: usize) -> usize {
        self.dt_rank.unwrap_or(c.div_ceil(16))
    }

    /// The configuration as JSON (what exports record). `block_widths` appears only when set
    /// (a pruned model), so the record of an unpruned model is what it was before per-block
    /// widths existed.
    pub fn to_json(&self) -> String {
        let text = self.to_string();
        if self.block_widths.is_none() {
            text.replace(",\n  \"block_widths\": null", "")
        } else {
            text
        }
    }

    /// The VSS blocks' checkpoint prefixes, encoder then decoder (the order of
    /// [`VmUnetConfig::block_widths`]).
    pub fn block_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (stage, &d) in self.depths.iter().enumerate() {
            v.extend((0..d).map(|b| format!("layers.{stage}.blocks.{b}")));
        }
        for (stage, &d) in self.depths_decoder.iter().enumerate() {
            v.extend((0..d).map(|b| format!("layers_up.{stage}.blocks.{b}")));
        }
        v
    }

    /// The SS2D widths of block `block` of encoder (or decoder) stage `stage`.
    pub fn block_width(&self, decoder: bool, stage: usize, block: usize) -> BlockWidth {
        let c = if decoder {
            self.dims_decoder()[stage]
        } else {
            self.dims[stage]
        };
        let default = BlockWidth {
            d_inner: self.ssm_expand * c,
            d_state: self.d_state,
        };
        let Some(widths) = &self.block_widths else {
            return default;
        };
        let before: usize = if decoder {
            self.depths.iter().sum::<usize>() + self.depths_decoder[..stage].iter().sum::<usize>()
        } else {
            self.depths[..stage].iter().sum()
        };
        widths.get(before + block).copied().unwrap_or(default)
    }

    /// H and W must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        self.patch_size << self.num_stages().saturating_sub(1)
    }

    /// Checks the configuration for consistency.
    pub fn validate(&self) -> Result<(), ModelError> {
        let err = |m: String| Err(ModelError::Config(m));
        let n = self.dims.len();
        if n == 0 {
            return err("`dims` is empty".into());
        }
        if self.depths.len() != n || self.depths_decoder.len() != n {
            return err(format!(
                "`dims`, `depths` and `depths_decoder` need the same length (got {}, {}, {})",
                n,
                self.depths.len(),
                self.depths_decoder.len()
            ));
        }
        for w in self.dims.windows(2) {
            if w[1] != 2 * w[0] {
                return err(format!(
                    "each stage must double the width (patch merging maps C to 2C): got {:?}",
                    self.dims
                ));
            }
        }
        let last = self.dims[n - 1];
        if !self.dims[0].is_multiple_of(4) {
            return err(format!(
                "dims[0] = {} must be divisible by 4 (final x4 patch expand)",
                self.dims[0]
            ));
        }
        if last == 0
            || self.input_channels == 0
            || self.num_classes == 0
            || self.d_state == 0
            || self.ssm_expand == 0
            || self.patch_size == 0
        {
            return err("sizes must be positive".into());
        }
        if self.d_conv.is_multiple_of(2) {
            return err(format!("d_conv = {} must be odd", self.d_conv));
        }
        if self.dt_rank == Some(0) {
            return err("dt_rank must be positive".into());
        }
        if let Some(w) = &self.block_widths {
            let blocks =
                self.depths.iter().sum::<usize>() + self.depths_decoder.iter().sum::<usize>();
            if w.len() != blocks {
                return err(format!(
                    "`block_widths` lists {} blocks, the model has {blocks}",
                    w.len()
                ));
            }
            if let Some(b) = w.iter().position(|b| b.d_inner == 0 || b.d_state == 0) {
                return err(format!(
                    "`block_widths[{b}]` ({}): widths must be positive",
                    self.block_names()[b]
                ));
            }
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return err(format!(
                "drop_path_rate = {} must be in [0, 1)",
                self.drop_path_rate
            ));
        }
        Ok(())
    }

    /// Builds the model with freshly initialised weights (official initialisation).
    pub fn init<B: ScanBackend>(&self, device: &B::Device) -> Result<VmUnet<B>, ModelError> {
        self.validate()?;
        Ok(VmUnet::new(self, device))
    }

    /// Per-stage shapes for an input of `height` x `width`.
    pub fn stage_shapes(&self, height: usize, width: usize) -> Vec<StageShape> {
        let mut out = Vec::new();
        let n = self.num_stages();
        for (i, (&c, &depth)) in self.dims.iter().zip(&self.depths).enumerate() {
            let s = self.patch_size << i;
            out.push(StageShape {
                name: format!("encoder.{i}"),
                channels: c,
                height: height / s,
                width: width / s,
                blocks: depth,
                d_inner: self.block_width(false, i, 0).d_inner,
                dt_rank: self.dt_rank_for(c),
            });
        }
        for (i, (&c, &depth)) in self
            .dims_decoder()
            .iter()
            .zip(&self.depths_decoder)
            .enumerate()
        {
            let s = self.patch_size << (n - 1 - i);
            out.push(StageShape {
                name: format!("decoder.{i}"),
                channels: c,
                height: height / s,
                width: width / s,
                blocks: depth,
                d_inner: self.block_width(true, i, 0).d_inner,
                dt_rank: self.dt_rank_for(c),
            });
        }
        out
    }

    /// Drop-path probabilities per encoder stage and block, as the official code spreads them.
    pub(crate) fn drop_paths(&self, decoder: bool) -> Vec<Vec<f64>> {
        let depths = if decoder {
            &self.depths_decoder
        } else {
            &self.depths
        };
        let total: usize = depths.iter().sum();
        let mut rates: Vec<f64> = (0..total)
            .map(|i| {
                if total > 1 {
                    self.drop_path_rate * i as f64 / (total - 1) as f64
                } else {
                    0.0
                }
            })
            .collect();
        if decoder {
            rates.reverse();
        }
        let mut out = Vec::new();
        let mut at = 0;
        for &d in depths {
            out.push(rates[at..at + d].to_vec());
            at += d;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_widths_follow_checkpoint_order() {
        let mut cfg = VmUnetConfig::small(1);
        // Unpruned: the JSON record has no block widths and reads back the same.
        assert!(!cfg.to_json().contains("block_widths"));
        let back: VmUnetConfig = serde_json::from_str(&cfg.to_json()).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(cfg.block_names().len(), 15);
        assert_eq!(cfg.block_names()[8], "layers_up.0.blocks.0");
        let d = cfg.block_width(true, 3, 0);
        assert_eq!((d.d_inner, d.d_state), (48, 16));
        let widths: Vec<BlockWidth> = (0..15)
            .map(|i| BlockWidth {
                d_inner: 8 + i,
                d_state: 4,
            })
            .collect();
        cfg.block_widths = Some(widths);
        cfg.validate().unwrap();
        let back: VmUnetConfig = serde_json::from_str(&cfg.to_json()).unwrap();
        assert_eq!(back, cfg);
        // Encoder stage 1 block 1 is block 3; decoder stage 2 block 0 is block 12.
        assert_eq!(cfg.block_width(false, 1, 1).d_inner, 11);
        assert_eq!(cfg.block_width(true, 2, 0).d_inner, 20);
        assert_eq!(cfg.stage_shapes(64, 64)[1].d_inner, 10);
        cfg.block_widths.as_mut().unwrap().pop();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("14 blocks"));
        let mut zero = VmUnetConfig::small(1);
        zero.block_widths = Some(vec![
            BlockWidth {
                d_inner: 0,
                d_state: 4
            };
            15
        ]);
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("positive"));
    }
}
