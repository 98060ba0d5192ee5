//! The architecture's single description.

use burn::config::Config;
use vmunet_scan::ScanBackend;

use crate::{ModelError, VmUnet};

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
                d_inner: self.ssm_expand * c,
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
                d_inner: self.ssm_expand * c,
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
