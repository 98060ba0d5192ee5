//! VSS blocks and the encoder / decoder stages built from them.

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use vmunet_scan::ScanBackend;

use crate::config::BlockWidth;
use crate::patch::{layer_norm, PatchExpand2D, PatchMerging2D};
use crate::trace::{ModulePath, Tracer};
use crate::{Ss2d, VmUnetConfig};

/// Stochastic depth: drops the whole residual branch per sample while training
/// (autodiff backends), identity otherwise.
#[derive(Module, Debug, Clone)]
pub struct DropPath {
    /// Drop probability.
    pub prob: f64,
}

impl DropPath {
    /// Applies the per-sample mask, scaled by 1 / keep.
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.prob <= 0.0 || !B::ad_enabled(&x.device()) {
            return x;
        }
        let keep = 1.0 - self.prob;
        let [n, _, _, _] = x.dims();
        let mask = Tensor::<B, 4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
        x * mask / keep
    }
}

/// `x + DropPath(SS2D(LN(x)))` (no MLP), channels-last.
#[derive(Module, Debug)]
pub struct VssBlock<B: Backend> {
    /// Pre-norm.
    pub ln_1: LayerNorm<B>,
    /// The SS2D mixer.
    pub self_attention: Ss2d<B>,
    /// Stochastic depth.
    pub drop_path: DropPath,
}

impl<B: ScanBackend> VssBlock<B> {
    pub(crate) fn new(
        cfg: &VmUnetConfig,
        dim: usize,
        width: BlockWidth,
        drop_path: f64,
        dev: &B::Device,
    ) -> Self {
        Self {
            ln_1: layer_norm(dim, cfg.layer_norm_eps, dev),
            self_attention: Ss2d::new(
                dim,
                width.d_inner,
                width.d_state,
                cfg.d_conv,
                cfg.dt_rank_for(dim),
                cfg.layer_norm_eps,
                dev,
            ),
            drop_path: DropPath { prob: drop_path },
        }
    }

    /// (N, H, W, C) -> (N, H, W, C); `path` is the block's module path, for `trace`.
    pub fn forward<T: Tracer<B>>(
        &self,
        x: Tensor<B, 4>,
        path: ModulePath<'_>,
        trace: &mut T,
    ) -> Tensor<B, 4> {
        let h = self.ln_1.forward(x.clone());
        trace.record(path.name("ln_1"), &h);
        let sa_path = path.name("self_attention");
        let h = self.self_attention.forward(h, sa_path, trace);
        trace.record(sa_path, &h);
        let out = x + self.drop_path.forward(h);
        trace.record(path, &out);
        out
    }
}

fn run_blocks<B: ScanBackend, T: Tracer<B>>(
    blocks: &[VssBlock<B>],
    mut x: Tensor<B, 4>,
    path: ModulePath<'_>,
    trace: &mut T,
) -> Tensor<B, 4> {
    let blocks_path = path.name("blocks");
    for (i, blk) in blocks.iter().enumerate() {
        x = blk.forward(x, blocks_path.index(i), trace);
    }
    x
}

/// Encoder stage: VSS blocks, then patch merging (all stages but the last).
#[derive(Module, Debug)]
pub struct VssLayer<B: Backend> {
    /// The stage's blocks.
    pub blocks: Vec<VssBlock<B>>,
    /// 2x down-sampling after the blocks.
    pub downsample: Option<PatchMerging2D<B>>,
}

impl<B: ScanBackend> VssLayer<B> {
    pub(crate) fn new(cfg: &VmUnetConfig, stage: usize, dev: &B::Device) -> Self {
        let dim = cfg.dims[stage];
        let dpr = &cfg.drop_paths(false)[stage];
        Self {
            blocks: dpr
                .iter()
                .enumerate()
                .map(|(b, &p)| VssBlock::new(cfg, dim, cfg.block_width(false, stage, b), p, dev))
                .collect(),
            downsample: (stage + 1 < cfg.num_stages())
                .then(|| PatchMerging2D::new(dim, cfg.layer_norm_eps, dev)),
        }
    }

    /// Runs the stage; `path` is its module path, for `trace`.
    pub fn forward<T: Tracer<B>>(
        &self,
        x: Tensor<B, 4>,
        path: ModulePath<'_>,
        trace: &mut T,
    ) -> Tensor<B, 4> {
        let mut x = run_blocks(&self.blocks, x, path, trace);
        if let Some(down) = &self.downsample {
            x = down.forward(x);
            trace.record(path.name("downsample"), &x);
        }
        trace.record(path, &x);
        x
    }
}

/// Decoder stage: patch expanding (all stages but the first), then VSS blocks.
#[derive(Module, Debug)]
pub struct VssLayerUp<B: Backend> {
    /// The stage's blocks.
    pub blocks: Vec<VssBlock<B>>,
    /// 2x up-sampling before the blocks.
    pub upsample: Option<PatchExpand2D<B>>,
}

impl<B: ScanBackend> VssLayerUp<B> {
    pub(crate) fn new(cfg: &VmUnetConfig, stage: usize, dev: &B::Device) -> Self {
        let dim = cfg.dims_decoder()[stage];
        let dpr = &cfg.drop_paths(true)[stage];
        Self {
            blocks: dpr
                .iter()
                .enumerate()
                .map(|(b, &p)| VssBlock::new(cfg, dim, cfg.block_width(true, stage, b), p, dev))
                .collect(),
            upsample: (stage > 0).then(|| PatchExpand2D::new(2 * dim, 2, cfg.layer_norm_eps, dev)),
        }
    }

    /// Runs the stage; `path` is its module path, for `trace`.
    pub fn forward<T: Tracer<B>>(
        &self,
        x: Tensor<B, 4>,
        path: ModulePath<'_>,
        trace: &mut T,
    ) -> Tensor<B, 4> {
        trace.record(path.name("input"), &x);
        let mut x = x;
        if let Some(up) = &self.upsample {
            x = up.forward(x);
            trace.record(path.name("upsample"), &x);
        }
        let x = run_blocks(&self.blocks, x, path, trace);
        trace.record(path, &x);
        x
    }
}
