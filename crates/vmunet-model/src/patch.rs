//! Patch embedding, merging (down) and expanding (up), channels-last.

use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};

/// The official `_init_weights` for linear layers: N(0, 0.02), no bias.
pub(crate) fn linear<B: Backend>(d_in: usize, d_out: usize, device: &B::Device) -> Linear<B> {
    LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

pub(crate) fn layer_norm<B: Backend>(d: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d).with_epsilon(eps).init(device)
}

/// `Conv2d(k = s = patch)` then channels-last LayerNorm: (N, C, H, W) -> (N, H/p, W/p, C0).
#[derive(Module, Debug)]
pub struct PatchEmbed2D<B: Backend> {
    /// Patch projection.
    pub proj: Conv2d<B>,
    /// LayerNorm over channels.
    pub norm: LayerNorm<B>,
}

impl<B: Backend> PatchEmbed2D<B> {
    pub(crate) fn new(c_in: usize, c_out: usize, patch: usize, eps: f64, dev: &B::Device) -> Self {
        Self {
            proj: Conv2dConfig::new([c_in, c_out], [patch, patch])
                .with_stride([patch, patch])
                .init(dev),
            norm: layer_norm(c_out, eps, dev),
        }
    }

    /// NCHW image to NHWC features.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.norm
            .forward(self.proj.forward(x).permute([0, 2, 3, 1]))
    }
}

/// Concatenates 2x2 neighbours ((h even, w even), (h odd, w even), (h even, w odd), (h odd,
/// w odd)), LayerNorm(4C), then Linear(4C -> 2C, no bias).
#[derive(Module, Debug)]
pub struct PatchMerging2D<B: Backend> {
    /// Linear(4C, 2C).
    pub reduction: Linear<B>,
    /// LayerNorm(4C).
    pub norm: LayerNorm<B>,
}

impl<B: Backend> PatchMerging2D<B> {
    pub(crate) fn new(dim: usize, eps: f64, dev: &B::Device) -> Self {
        Self {
            reduction: linear(4 * dim, 2 * dim, dev),
            norm: layer_norm(4 * dim, eps, dev),
        }
    }

    /// (N, H, W, C) -> (N, H/2, W/2, 2C).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, h, w, c] = x.dims();
        let x = x
            .reshape([n, h / 2, 2, w / 2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([n, h / 2, w / 2, 4 * c]);
        self.reduction.forward(self.norm.forward(x))
    }
}

/// Linear(C -> s*s*C') then pixel-shuffle `b h w (p1 p2 c) -> b (h p1) (w p2) c` and
/// LayerNorm(C'). The official `PatchExpand2D(dim)` is `in = 2*dim, scale 2`;
/// `Final_PatchExpand2D(dim)` is `in = dim, scale 4`.
#[derive(Module, Debug)]
pub struct PatchExpand2D<B: Backend> {
    /// Linear(C_in, scale * C_in).
    pub expand: Linear<B>,
    /// LayerNorm(C_in / scale).
    pub norm: LayerNorm<B>,
    /// Spatial up-scaling factor.
    pub scale: usize,
}

impl<B: Backend> PatchExpand2D<B> {
    pub(crate) fn new(c_in: usize, scale: usize, eps: f64, dev: &B::Device) -> Self {
        Self {
            expand: linear(c_in, scale * c_in, dev),
            norm: layer_norm(c_in / scale, eps, dev),
            scale,
        }
    }

    /// (N, H, W, C) -> (N, sH, sW, C / s).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, h, w, c] = x.dims();
        let s = self.scale;
        let co = c / s;
        let x = self
            .expand
            .forward(x)
            .reshape([n, h, w, s, s, co])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([n, h * s, w * s, co]);
        self.norm.forward(x)
    }
}
