//! SS2D: the 2-D selective-scan mixer of a VSS block.

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};
use vmunet_scan::{CrossScanDims, ScanBackend, DIRECTIONS};

use crate::patch::{layer_norm, linear};
use crate::trace::{ModulePath, Tracer};

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

    /// Structured pruning: keeps the inner channels `channels` and the states `states` (sorted,
    /// distinct, in range) in every tensor that has them: `in_proj` (both the x and z halves),
    /// the depthwise conv, `x_proj` (columns; B and C rows for states), `dt_proj`, the delta
    /// bias, `A_logs` and `Ds` (per direction), `out_norm` and `out_proj`.
    pub fn prune(self, channels: &[usize], states: &[usize], eps: f64) -> Self {
        let dev = self.ds.val().device();
        let (d, r, n, k) = (self.d_inner, self.dt_rank, self.d_state, DIRECTIONS);
        let idx = |v: Vec<usize>| {
            Tensor::<B, 1, burn::tensor::Int>::from_data(
                TensorData::new(v.iter().map(|&i| i as i64).collect::<Vec<_>>(), [v.len()]),
                &dev,
            )
        };
        let ch = idx(channels.to_vec());
        let d2 = channels.len();
        let n2 = states.len();
        // in_proj: [C, 2D] (burn layout), x then z.
        let xz: Vec<usize> = channels
            .iter()
            .copied()
            .chain(channels.iter().map(|&c| d + c))
            .collect();
        let in_proj = Linear {
            weight: Param::from_tensor(self.in_proj.weight.val().select(1, idx(xz))),
            bias: None,
        };
        let kernel = self.conv2d.kernel_size;
        let mut conv2d = Conv2dConfig::new([d2, d2], kernel)
            .with_groups(d2)
            .with_padding(self.conv2d.padding.clone())
            .init(&dev);
        conv2d.weight = Param::from_tensor(self.conv2d.weight.val().select(0, ch.clone()));
        conv2d.bias = self
            .conv2d
            .bias
            .map(|b| Param::from_tensor(b.val().select(0, ch.clone())));
        // x_proj: [K, R + 2N, D]: channel columns, then the dt rows and the kept B and C rows.
        let rows: Vec<usize> = (0..r)
            .chain(states.iter().map(|&s| r + s))
            .chain(states.iter().map(|&s| r + n + s))
            .collect();
        let x_proj = self
            .x_proj_weight
            .val()
            .select(2, ch.clone())
            .select(1, idx(rows));
        let dt_w = self.dt_projs_weight.val().select(1, ch.clone());
        let dt_b = self.dt_projs_bias.val().select(1, ch.clone());
        // A_logs [K D, N] and Ds [K D]: direction-major rows.
        let dir_rows: Vec<usize> = (0..k)
            .flat_map(|kk| channels.iter().map(move |&c| kk * d + c))
            .collect();
        let a = self
            .a_logs
            .val()
            .select(0, idx(dir_rows.clone()))
            .select(1, idx(states.to_vec()));
        let ds = self.ds.val().select(0, idx(dir_rows));
        let mut out_norm = layer_norm(d2, eps, &dev);
        out_norm.gamma = Param::from_tensor(self.out_norm.gamma.val().select(0, ch.clone()));
        out_norm.beta = self
            .out_norm
            .beta
            .map(|b| Param::from_tensor(b.val().select(0, ch.clone())));
        let out_proj = Linear {
            weight: Param::from_tensor(self.out_proj.weight.val().select(0, ch)),
            bias: None,
        };
        Self {
            in_proj,
            conv2d,
            x_proj_weight: Param::from_tensor(x_proj),
            dt_projs_weight: Param::from_tensor(dt_w),
            dt_projs_bias: Param::from_tensor(dt_b),
            a_logs: Param::from_tensor(a),
            ds: Param::from_tensor(ds),
            out_norm,
            out_proj,
            d_inner: d2,
            dt_rank: r,
            d_state: n2,
        }
    }

    /// (N, H, W, C) -> (N, H, W, C); `path` is the mixer's module path, for `trace`.
    pub fn forward<T: Tracer<B>>(
        &self,
        x: Tensor<B, 4>,
        path: ModulePath<'_>,
        trace: &mut T,
    ) -> Tensor<B, 4> {
        let [n, h, w, _] = x.dims();
        let (d, l, k) = (self.d_inner, h * w, DIRECTIONS);
        let (r, st) = (self.dt_rank, self.d_state);
        let p = r + 2 * st;
        let xz = self.in_proj.forward(x);
        trace.record(path.name("in_proj"), &xz);
        let z = xz.clone().narrow(3, d, d);
        // Channels-last depthwise conv (the backend's op: a fast host kernel on CPU).
        let weight = self.conv2d.weight.val();
        let pad = weight.dims()[2] / 2;
        let bias = match &self.conv2d.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([d], &weight.device()),
        };
        let x = B::depthwise_conv2d(xz.narrow(3, 0, d), weight, bias, pad);
        if trace.enabled() {
            trace.record(path.name("conv2d"), &x.clone().permute([0, 3, 1, 2]));
        }
        let x = silu(x);
        if trace.enabled() {
            trace.record(path.name("act"), &x.clone().permute([0, 3, 1, 2]));
        }
        // Everything below stays row-major and channels-last; the scan kernel walks the four
        // directions itself, so no transposed or flipped copies are made.
        let u = x.reshape([n, l, d]);
        let w_proj = self
            .x_proj_weight
            .val()
            .reshape([k * p, d])
            .transpose()
            .unsqueeze::<3>();
        let x_dbl = u.clone().matmul(w_proj).reshape([n, l, k, p]); // (N, L, K, R + 2S)
        let dt_in = x_dbl.clone().narrow(3, 0, r).permute([0, 2, 1, 3]); // (N, K, L, R)
        let dt_w = self.dt_projs_weight.val().swap_dims(1, 2).unsqueeze::<4>(); // (1, K, R, D)
        let delta = dt_in.matmul(dt_w); // (N, K, L, D)
        let dims = CrossScanDims {
            batch: n,
            height: h,
            width: w,
            channels: d,
            d_state: st,
            dt_rank: r,
        };
        let y = B::selective_scan_2d(
            dims,
            u,
            delta,
            x_dbl,
            self.a_logs.val().exp().neg(),
            self.ds.val(),
            self.dt_projs_bias.val().reshape([k * d]),
        )
        .reshape([n, h, w, d]);
        trace.record(path.name("out_norm").name("input"), &y);
        let y = self.out_norm.forward(y);
        trace.record(path.name("out_norm"), &y);
        let y = y * silu(z);
        trace.record(path.name("out_proj").name("input"), &y);
        self.out_proj.forward(y)
    }
}
