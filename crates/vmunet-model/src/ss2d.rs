//! SS2D: the 2-D selective-scan mixer of a VSS block.

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};
use vmunet_scan::{selective_scan, ScanBackend};

use crate::patch::{layer_norm, linear};
use crate::Trace;

/// Number of scan directions: row-major, column-major and both reversed.
pub const DIRECTIONS: usize = 4;

/// `in_proj -> (x, z)`; `x -> depthwise conv -> SiLU -> 4-direction selective scan -> sum ->
/// out_norm`; `* silu(z) -> out_proj`. Parameter names follow the official checkpoint.
#[derive(Module, Debug)]
pub struct Ss2d<B: Backend> {
    /// Linear(C, 2 d_inner), no bias.
    pub in_proj: Linear<B>,
    /// Depthwise Conv2d(d_inner, k x k, groups = d_inner), with bias.
    pub conv2d: Conv2d<B>,
    /// Per-direction projection to (dt_rank + 2N): `(K, dt_rank + 2N, d_inner)`.
    pub x_proj_weight: Param<Tensor<B, 3>>,
    /// Per-direction delta projection: `(K, d_inner, dt_rank)`.
    pub dt_projs_weight: Param<Tensor<B, 3>>,
    /// Delta bias (added inside the scan, before softplus): `(K, d_inner)`.
    pub dt_projs_bias: Param<Tensor<B, 2>>,
    /// `log(-A)`: `(K d_inner, N)`.
    pub a_logs: Param<Tensor<B, 2>>,
    /// Skip weights: `(K d_inner)`.
    pub ds: Param<Tensor<B, 1>>,
    /// LayerNorm(d_inner).
    pub out_norm: LayerNorm<B>,
    /// Linear(d_inner, C), no bias.
    pub out_proj: Linear<B>,
    /// d_inner.
    pub d_inner: usize,
    /// Delta rank.
    pub dt_rank: usize,
    /// State size N.
    pub d_state: usize,
}

impl<B: ScanBackend> Ss2d<B> {
    /// Official initialisation (`dt_init = "random"`, dt in [1e-3, 1e-1], A = 1..N, D = 1).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        d_model: usize,
        d_inner: usize,
        d_state: usize,
        d_conv: usize,
        dt_rank: usize,
        eps: f64,
        dev: &B::Device,
    ) -> Self {
        let k = DIRECTIONS;
        let bound = 1.0 / (d_inner as f64).sqrt();
        let x_proj_weight = Tensor::random(
            [k, dt_rank + 2 * d_state, d_inner],
            Distribution::Uniform(-bound, bound),
            dev,
        );
        let dt_std = (dt_rank as f64).powf(-0.5);
        let dt_projs_weight = Tensor::random(
            [k, d_inner, dt_rank],
            Distribution::Uniform(-dt_std, dt_std),
            dev,
        );
        // dt = exp(U(log 1e-3, log 1e-1)) clamped at 1e-4; bias = softplus^-1(dt).
        let (lo, hi) = (1e-3f64.ln(), 1e-1f64.ln());
        let dt = Tensor::<B, 2>::random([k, d_inner], Distribution::Uniform(lo, hi), dev)
            .exp()
            .clamp_min(1e-4);
        // Inverse softplus: dt + log(-expm1(-dt)) = dt + log(1 - exp(-dt)).
        let dt_bias = dt.clone() + (dt.neg().exp().neg() + 1.0).log();
        let a: Vec<f32> = (0..k * d_inner)
            .flat_map(|_| (1..=d_state).map(|n| (n as f32).ln()))
            .collect();
        Self {
            in_proj: linear(d_model, 2 * d_inner, dev),
            conv2d: Conv2dConfig::new([d_inner, d_inner], [d_conv, d_conv])
                .with_groups(d_inner)
                .with_padding(PaddingConfig2d::Explicit(
                    d_conv / 2,
                    d_conv / 2,
                    d_conv / 2,
                    d_conv / 2,
                ))
                .init(dev),
            x_proj_weight: Param::from_tensor(x_proj_weight),
            dt_projs_weight: Param::from_tensor(dt_projs_weight),
            dt_projs_bias: Param::from_tensor(dt_bias),
            a_logs: Param::from_tensor(Tensor::from_data(
                TensorData::new(a, [k * d_inner, d_state]),
                dev,
            )),
            ds: Initializer::Ones.init([k * d_inner], dev),
            out_norm: layer_norm(d_inner, eps, dev),
            out_proj: linear(d_inner, d_model, dev),
            d_inner,
            dt_rank,
            d_state,
        }
    }

    /// (N, H, W, C) -> (N, H, W, C).
    pub fn forward(&self, x: Tensor<B, 4>, path: &str, trace: &mut Trace<'_, B>) -> Tensor<B, 4> {
        let [n, h, w, _] = x.dims();
        let d = self.d_inner;
        let xz = self.in_proj.forward(x);
        trace.emit(path, "in_proj", &xz);
        let z = xz.clone().narrow(3, d, d);
        let x = xz.narrow(3, 0, d).permute([0, 3, 1, 2]);
        let x = self.conv2d.forward(x);
        trace.emit(path, "conv2d", &x);
        let x = silu(x);
        trace.emit(path, "act", &x);
        let y = self.forward_core(x); // (N, D, L)
        let y = y.swap_dims(1, 2).reshape([n, h, w, d]);
        trace.emit(path, "out_norm.input", &y);
        let y = self.out_norm.forward(y);
        trace.emit(path, "out_norm", &y);
        let y = y * silu(z);
        trace.emit(path, "out_proj.input", &y);
        self.out_proj.forward(y)
    }

    /// The four-direction scan on (N, D, H, W); returns the row-major sum (N, D, H*W).
    fn forward_core(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let [n, d, h, w] = x.dims();
        let (k, l, r, st) = (DIRECTIONS, h * w, self.dt_rank, self.d_state);
        let x_hw = x.clone().reshape([n, d, l]);
        let x_wh = x.swap_dims(2, 3).reshape([n, d, l]);
        let x_hwwh = Tensor::stack::<4>(vec![x_hw, x_wh], 1); // (N, 2, D, L)
        let xs = Tensor::cat(vec![x_hwwh.clone(), x_hwwh.flip([3])], 1); // (N, 4, D, L)
        let x_dbl = self.x_proj_weight.val().unsqueeze::<4>().matmul(xs.clone()); // (N, K, R + 2N, L)
        let dts = x_dbl.clone().narrow(2, 0, r);
        let bs = x_dbl.clone().narrow(2, r, st);
        let cs = x_dbl.narrow(2, r + st, st);
        let dts = self.dt_projs_weight.val().unsqueeze::<4>().matmul(dts); // (N, K, D, L)
        let a = self.a_logs.val().exp().neg();
        let out = selective_scan(
            xs.reshape([n, k * d, l]),
            dts.reshape([n, k * d, l]),
            a,
            bs,
            cs,
            self.ds.val(),
            self.dt_projs_bias.val().reshape([k * d]),
        )
        .reshape([n, k, d, l]);
        let dir = |i: usize| out.clone().narrow(1, i, 1).reshape([n, d, l]);
        let row = dir(0) + dir(2).flip([2]);
        let col = (dir(1) + dir(3).flip([2]))
            .reshape([n, d, w, h])
            .swap_dims(2, 3)
            .reshape([n, d, l]);
        row + col
    }
}
