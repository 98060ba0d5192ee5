//! The whole network.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{backend::Backend, Tensor};
use vmunet_scan::ScanBackend;

use crate::trace::{ModulePath, NoTrace, Tracer};
use crate::{ModelError, PatchEmbed2D, PatchExpand2D, VmUnetConfig, VssLayer, VssLayerUp};

/// What turns logits into probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputActivation {
    /// One class: per-pixel sigmoid.
    Sigmoid,
    /// Several classes: softmax over the class axis.
    Softmax,
}

impl OutputActivation {
    /// Name used in reports and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigmoid => "sigmoid",
            Self::Softmax => "softmax",
        }
    }
}

/// VM-UNet: patch embedding, four encoder stages, four decoder stages with additive skips,
/// x4 final expansion and a 1x1 convolution. Field names follow the official checkpoint keys.
#[derive(Module, Debug)]
pub struct VmUnet<B: Backend> {
    /// Conv 4x4/4 + LayerNorm.
    pub patch_embed: PatchEmbed2D<B>,
    /// Encoder stages.
    pub layers: Vec<VssLayer<B>>,
    /// Decoder stages (deepest first).
    pub layers_up: Vec<VssLayerUp<B>>,
    /// Final x4 patch expansion.
    pub final_up: PatchExpand2D<B>,
    /// 1x1 convolution to classes.
    pub final_conv: Conv2d<B>,
    /// Expected input channels.
    pub input_channels: usize,
    /// H and W must be multiples of this.
    pub size_multiple: usize,
}

impl<B: ScanBackend> VmUnet<B> {
    pub(crate) fn new(cfg: &VmUnetConfig, dev: &B::Device) -> Self {
        let c0 = cfg.dims[0];
        Self {
            patch_embed: PatchEmbed2D::new(
                cfg.input_channels,
                c0,
                cfg.patch_size,
                cfg.layer_norm_eps,
                dev,
            ),
            layers: (0..cfg.num_stages())
                .map(|i| VssLayer::new(cfg, i, dev))
                .collect(),
            layers_up: (0..cfg.num_stages())
                .map(|i| VssLayerUp::new(cfg, i, dev))
                .collect(),
            final_up: PatchExpand2D::new(c0, 4, cfg.layer_norm_eps, dev),
            final_conv: Conv2dConfig::new([c0 / 4, cfg.num_classes], [1, 1]).init(dev),
            input_channels: cfg.input_channels,
            size_multiple: cfg.size_multiple(),
        }
    }

    /// The SS2D mixers in block order (encoder, then decoder: the order of
    /// [`VmUnetConfig::block_names`]).
    pub fn mixers(&self) -> Vec<&crate::Ss2d<B>> {
        self.layers
            .iter()
            .flat_map(|l| l.blocks.iter())
            .chain(self.layers_up.iter().flat_map(|l| l.blocks.iter()))
            .map(|b| &b.self_attention)
            .collect()
    }

    /// Structured pruning of every block: `keep[i]` holds the inner channels and states block
    /// `i` keeps (block order as [`VmUnet::mixers`]). Returns the smaller model and its
    /// configuration (with per-block widths).
    pub fn prune_blocks(
        mut self,
        cfg: &VmUnetConfig,
        keep: &[(Vec<usize>, Vec<usize>)],
    ) -> Result<(Self, VmUnetConfig), ModelError> {
        let n = self.mixers().len();
        if keep.len() != n {
            return Err(ModelError::Config(format!(
                "pruning lists {} blocks, the model has {n}",
                keep.len()
            )));
        }
        for (i, (m, (ch, st))) in self.mixers().iter().zip(keep).enumerate() {
            let ok = |v: &[usize], max: usize| {
                !v.is_empty() && v.windows(2).all(|w| w[0] < w[1]) && v.iter().all(|&x| x < max)
            };
            if !ok(ch, m.d_inner) || !ok(st, m.d_state) {
                return Err(ModelError::Config(format!(
                    "block {}: kept channels and states must be sorted, distinct, non-empty and below {} / {}",
                    cfg.block_names().get(i).cloned().unwrap_or_default(),
                    m.d_inner,
                    m.d_state
                )));
            }
        }
        let eps = cfg.layer_norm_eps;
        let mut it = keep.iter();
        let mut prune = |blocks: Vec<crate::VssBlock<B>>| -> Vec<crate::VssBlock<B>> {
            blocks
                .into_iter()
                .map(|b| {
                    let (ch, st) = it.next().expect("length checked");
                    crate::VssBlock {
                        ln_1: b.ln_1,
                        self_attention: b.self_attention.prune(ch, st, eps),
                        drop_path: b.drop_path,
                    }
                })
                .collect()
        };
        for l in &mut self.layers {
            let blocks = std::mem::take(&mut l.blocks);
            l.blocks = prune(blocks);
        }
        for l in &mut self.layers_up {
            let blocks = std::mem::take(&mut l.blocks);
            l.blocks = prune(blocks);
        }
        let widths = self
            .mixers()
            .iter()
            .map(|m| crate::BlockWidth {
                d_inner: m.d_inner,
                d_state: m.d_state,
            })
            .collect();
        let cfg = cfg.clone().with_block_widths(Some(widths));
        cfg.validate()?;
        Ok((self, cfg))
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.final_conv.weight.dims()[0]
    }

    /// Sigmoid for one class, softmax otherwise.
    pub fn activation(&self) -> OutputActivation {
        if self.num_classes() == 1 {
            OutputActivation::Sigmoid
        } else {
            OutputActivation::Softmax
        }
    }

    /// Checks an NCHW input shape.
    pub fn check_input(&self, shape: [usize; 4]) -> Result<(), ModelError> {
        let [n, c, h, w] = shape;
        let bad = |reason: String| {
            Err(ModelError::Input {
                shape: shape.to_vec(),
                reason,
            })
        };
        if n == 0 {
            return bad("the batch is empty".into());
        }
        if c != self.input_channels && !(c == 1 && self.input_channels == 3) {
            return bad(format!(
                "the model expects {} channels{}, got {c}",
                self.input_channels,
                if self.input_channels == 3 {
                    " (or 1, repeated)"
                } else {
                    ""
                }
            ));
        }
        let m = self.size_multiple;
        if h == 0 || w == 0 || h % m != 0 || w % m != 0 {
            return bad(format!(
                "height and width must be positive multiples of {m} (got {h}x{w}); resize or pad the input"
            ));
        }
        Ok(())
    }

    /// Raw logits `(N, classes, H, W)` for an NCHW input.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, ModelError> {
        self.forward_traced(x, &mut NoTrace)
    }

    /// Probabilities: sigmoid (one class) or softmax over classes.
    pub fn forward_probabilities(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(self.activate(self.forward(x)?))
    }

    /// Applies the output activation to logits.
    pub fn activate(&self, logits: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.activation() {
            OutputActivation::Sigmoid => sigmoid(logits),
            OutputActivation::Softmax => softmax(logits, 1),
        }
    }

    /// [`Self::forward`] reporting intermediate activations to `trace` (a
    /// [`crate::Trace`] for the parity tests; [`NoTrace`] records nothing and costs nothing).
    pub fn forward_traced<T: Tracer<B>>(
        &self,
        x: Tensor<B, 4>,
        trace: &mut T,
    ) -> Result<Tensor<B, 4>, ModelError> {
        self.check_input(x.dims())?;
        let x = if x.dims()[1] == 1 && self.input_channels == 3 {
            x.repeat_dim(1, 3)
        } else {
            x
        };
        let root = ModulePath::ROOT;
        let mut x = self.patch_embed.forward(x);
        trace.record(root.name("patch_embed"), &x);
        let mut skips = Vec::with_capacity(self.layers.len());
        let layers = root.name("layers");
        for (i, layer) in self.layers.iter().enumerate() {
            skips.push(x.clone());
            x = layer.forward(x, layers.index(i), trace);
        }
        let layers_up = root.name("layers_up");
        for (i, layer) in self.layers_up.iter().enumerate() {
            if i > 0 {
                x = x + skips[skips.len() - i].clone();
            }
            x = layer.forward(x, layers_up.index(i), trace);
        }
        let x = self.final_up.forward(x);
        trace.record(root.name("final_up"), &x);
        let x = self.final_conv.forward(x.permute([0, 3, 1, 2]));
        trace.record(root.name("final_conv"), &x);
        Ok(x)
    }
}
