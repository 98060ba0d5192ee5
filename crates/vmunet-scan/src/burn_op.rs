//! The scan as a burn operation.
//!
//! [`ScanBackend`] is the extension point a backend implements to run the scan its own way
//! (a CubeCL kernel on burn-cuda/burn-wgpu, an autodiff-aware op for training). The default
//! method runs [`CpuScan`] on host buffers, so every backend works out of the box.
//! [`DwConvBackend`] does the same for SS2D's depthwise convolution.

use burn::tensor::{backend::Backend, ops::ConvOptions, Tensor, TensorData, TensorPrimitive};

use crate::cpu::CpuScan;
use crate::cross::{cross_scan, CrossScanInputs};
use crate::cross_bwd::cross_scan_backward;
use crate::dims::{CrossScanDims, ScanDims, ScanInputs};
use crate::dwconv::{self, DwConvDims};
use crate::scan::SelectiveScan;

/// Gradients of [`DwConvBackend::depthwise_conv2d`].
#[derive(Debug, Clone)]
pub struct DwConvTensorGrads<B: Backend> {
    /// d/dx, `(N, H, W, C)`.
    pub x: Tensor<B, 4>,
    /// d/d(weight), `(C, 1, K, K)`.
    pub weight: Tensor<B, 4>,
    /// d/d(bias), `(C)`.
    pub bias: Tensor<B, 1>,
}

/// A backend that runs SS2D's depthwise convolution channels-last: `x (N, H, W, C)`, `weight`
/// `(C, 1, K, K)` (burn's `Conv2d` layout with `groups = C`), `bias (C)`, stride 1, zero padding
/// `padding` on every side; returns `(N, H + 2P - K + 1, W + 2P - K + 1, C)`.
///
/// The defaults use burn's own convolution (through NCHW views): right for every backend, fast
/// on GPUs. The ndarray backend overrides both with [`crate::depthwise_conv2d`] on host buffers,
/// whose backward is a few multiply-adds per weight instead of burn-ndarray's generic grouped
/// transposed convolution (which dominated a CPU training step).
pub trait DwConvBackend: Backend {
    /// Forward pass.
    fn depthwise_conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        padding: usize,
    ) -> Tensor<Self, 4> {
        burn_depthwise_conv2d(x, weight, bias, padding)
    }

    /// Backward pass for the output gradient `dy (N, Ho, Wo, C)`.
    fn depthwise_conv2d_backward(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        padding: usize,
        dy: Tensor<Self, 4>,
    ) -> DwConvTensorGrads<Self> {
        burn_depthwise_conv2d_backward(x, weight, padding, dy)
    }
}

/// [`DwConvBackend::depthwise_conv2d`] with burn's grouped `conv2d` (the trait's default).
pub fn burn_depthwise_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    padding: usize,
) -> Tensor<B, 4> {
    let options = ConvOptions::new([1, 1], [padding, padding], [1, 1], weight.dims()[0]);
    burn::tensor::module::conv2d(x.permute([0, 3, 1, 2]), weight, Some(bias), options)
        .permute([0, 2, 3, 1])
}

/// [`DwConvBackend::depthwise_conv2d_backward`] with burn's convolution backward ops (the
/// trait's default).
pub fn burn_depthwise_conv2d_backward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    padding: usize,
    dy: Tensor<B, 4>,
) -> DwConvTensorGrads<B> {
    let options = ConvOptions::new([1, 1], [padding, padding], [1, 1], weight.dims()[0]);
    let prim = |t: Tensor<B, 4>| t.permute([0, 3, 1, 2]).into_primitive().tensor();
    let (x, dy, w) = (prim(x), prim(dy), weight.into_primitive().tensor());
    let dx = B::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), options.clone());
    let dw = B::conv2d_weight_backward(x, w, dy.clone(), options);
    let dy = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(dy));
    DwConvTensorGrads {
        x: Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(dx)).permute([0, 2, 3, 1]),
        weight: Tensor::from_primitive(TensorPrimitive::Float(dw)),
        bias: dy.sum_dim(3).sum_dim(2).sum_dim(0).reshape([-1]),
    }
}

fn dw_dims(x: [usize; 4], weight: [usize; 4], padding: usize) -> DwConvDims {
    let [batch, height, width, channels] = x;
    assert_eq!(
        weight,
        [channels, 1, weight[2], weight[2]],
        "depthwise conv: weight {weight:?} for input {x:?}"
    );
    DwConvDims {
        batch,
        height,
        width,
        channels,
        kernel: weight[2],
        padding,
    }
}

/// [`DwConvBackend`] on host buffers ([`crate::depthwise_conv2d`]), for CPU backends.
macro_rules! host_dwconv {
    ($($backend:ty),*) => {$(
        impl DwConvBackend for $backend {
            fn depthwise_conv2d(
                x: Tensor<Self, 4>,
                weight: Tensor<Self, 4>,
                bias: Tensor<Self, 1>,
                padding: usize,
            ) -> Tensor<Self, 4> {
                let dims = dw_dims(x.dims(), weight.dims(), padding);
                let device = x.device();
                let y = dwconv::depthwise_conv2d(&dims, &host(x), &host(weight), &host(bias));
                let shape = [dims.batch, dims.out_height(), dims.out_width(), dims.channels];
                Tensor::from_data(TensorData::new(y, shape), &device)
            }

            fn depthwise_conv2d_backward(
                x: Tensor<Self, 4>,
                weight: Tensor<Self, 4>,
                padding: usize,
                dy: Tensor<Self, 4>,
            ) -> DwConvTensorGrads<Self> {
                let (xs, ws) = (x.dims(), weight.dims());
                let dims = dw_dims(xs, ws, padding);
                let device = x.device();
                let g = dwconv::depthwise_conv2d_backward(&dims, &host(x), &host(weight), &host(dy));
                DwConvTensorGrads {
                    x: Tensor::from_data(TensorData::new(g.x, xs), &device),
                    weight: Tensor::from_data(TensorData::new(g.weight, ws), &device),
                    bias: Tensor::from_data(TensorData::new(g.bias, [dims.channels]), &device),
                }
            }
        }
    )*};
}

host_dwconv!(burn::backend::NdArray<f32>, burn::backend::NdArray<f64>);

/// Gradients of [`ScanBackend::selective_scan_2d`] with respect to each of its tensor inputs,
/// in the inputs' shapes. The `dt` columns of `x_dbl` are zero: they reach the scan only through
/// `delta`.
#[derive(Debug, Clone)]
pub struct CrossScanTensorGrads<B: Backend> {
    /// d/du, `(N, L, D)`.
    pub u: Tensor<B, 3>,
    /// d/d(delta), `(N, K, L, D)`.
    pub delta: Tensor<B, 4>,
    /// d/d(x_dbl), `(N, L, K, R + 2S)`.
    pub x_dbl: Tensor<B, 4>,
    /// d/dA, `(K D, S)`.
    pub a: Tensor<B, 2>,
    /// d/dD, `(K D)`.
    pub d: Tensor<B, 1>,
    /// d/d(delta_bias), `(K D)`.
    pub delta_bias: Tensor<B, 1>,
}

/// A backend that can run the selective scan. Shapes follow mamba's `selective_scan_fn`:
/// `u`, `delta`: `(B, C, L)`; `a`: `(C, N)`; `b`, `c`: `(B, K, N, L)`; `d`, `delta_bias`: `(C)`.
/// Softplus is always applied to `delta + delta_bias`.
pub trait ScanBackend: DwConvBackend {
    /// Runs the scan and returns `y`, `(B, C, L)`.
    fn selective_scan(
        u: Tensor<Self, 3>,
        delta: Tensor<Self, 3>,
        a: Tensor<Self, 2>,
        b: Tensor<Self, 4>,
        c: Tensor<Self, 4>,
        d: Tensor<Self, 1>,
        delta_bias: Tensor<Self, 1>,
    ) -> Tensor<Self, 3> {
        host_scan(&CpuScan, u, delta, a, b, c, d, delta_bias)
    }

    /// SS2D's four-direction scan, channels-last (see [`crate::cross_scan`]):
    /// `u` `(N, L, D)`, `delta` `(N, K, L, D)`, `x_dbl` `(N, L, K, R + 2S)`, `a` `(K D, S)`,
    /// `d` and `delta_bias` `(K D)`. Returns `(N, L, D)` summed over directions.
    #[allow(clippy::too_many_arguments)]
    fn selective_scan_2d(
        dims: CrossScanDims,
        u: Tensor<Self, 3>,
        delta: Tensor<Self, 4>,
        x_dbl: Tensor<Self, 4>,
        a: Tensor<Self, 2>,
        d: Tensor<Self, 1>,
        delta_bias: Tensor<Self, 1>,
    ) -> Tensor<Self, 3> {
        let device = u.device();
        let (u, delta, x_dbl, a, d, bias) = (
            host(u),
            host(delta),
            host(x_dbl),
            host(a),
            host(d),
            host(delta_bias),
        );
        let inputs = CrossScanInputs {
            dims,
            u: &u,
            delta: &delta,
            x_dbl: &x_dbl,
            a: &a,
            d: &d,
            delta_bias: &bias,
        };
        let y = cross_scan(&inputs)
            .unwrap_or_else(|e| panic!("cross scan called with inconsistent shapes: {e}"));
        Tensor::from_data(
            TensorData::new(y, [dims.batch, dims.len(), dims.channels]),
            &device,
        )
    }

    /// Backward pass of [`ScanBackend::selective_scan_2d`] for the output gradient `dy`
    /// `(N, L, D)`. The default recomputes the states on the host
    /// ([`crate::cross_scan_backward`]); GPU backends override it with a kernel.
    #[allow(clippy::too_many_arguments)]
    fn selective_scan_2d_backward(
        dims: CrossScanDims,
        u: Tensor<Self, 3>,
        delta: Tensor<Self, 4>,
        x_dbl: Tensor<Self, 4>,
        a: Tensor<Self, 2>,
        d: Tensor<Self, 1>,
        delta_bias: Tensor<Self, 1>,
        dy: Tensor<Self, 3>,
    ) -> CrossScanTensorGrads<Self> {
        let device = u.device();
        let shapes = (
            u.dims(),
            delta.dims(),
            x_dbl.dims(),
            a.dims(),
            d.dims(),
            delta_bias.dims(),
        );
        let (u, delta, x_dbl, a, d, bias, dy) = (
            host(u),
            host(delta),
            host(x_dbl),
            host(a),
            host(d),
            host(delta_bias),
            host(dy),
        );
        let inputs = CrossScanInputs {
            dims,
            u: &u,
            delta: &delta,
            x_dbl: &x_dbl,
            a: &a,
            d: &d,
            delta_bias: &bias,
        };
        let g = cross_scan_backward(&inputs, &dy)
            .unwrap_or_else(|e| panic!("cross scan backward called with inconsistent shapes: {e}"));
        CrossScanTensorGrads {
            u: Tensor::from_data(TensorData::new(g.u, shapes.0), &device),
            delta: Tensor::from_data(TensorData::new(g.delta, shapes.1), &device),
            x_dbl: Tensor::from_data(TensorData::new(g.x_dbl, shapes.2), &device),
            a: Tensor::from_data(TensorData::new(g.a, shapes.3), &device),
            d: Tensor::from_data(TensorData::new(g.d, shapes.4), &device),
            delta_bias: Tensor::from_data(TensorData::new(g.delta_bias, shapes.5), &device),
        }
    }
}

impl ScanBackend for burn::backend::NdArray<f32> {}
impl ScanBackend for burn::backend::NdArray<f64> {}

/// Calls `B::selective_scan` (free-function form for model code).
#[allow(clippy::too_many_arguments)]
pub fn selective_scan<B: ScanBackend>(
    u: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    d: Tensor<B, 1>,
    delta_bias: Tensor<B, 1>,
) -> Tensor<B, 3> {
    B::selective_scan(u, delta, a, b, c, d, delta_bias)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    let prim = t.into_primitive().tensor();
    if let Some(v) = ndarray_f32(&prim) {
        return v;
    }
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(prim))
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("selective scan: float tensor converts to f32")
}

/// A contiguous f32 ndarray tensor as one `memcpy`. burn-ndarray's `into_data` walks a tensor
/// element by element (dynamic-rank indexing) whenever its buffer is shared, which it always
/// is under autodiff (the graph keeps the inputs): that walk took a sixth of a training step.
fn ndarray_f32(prim: &dyn std::any::Any) -> Option<Vec<f32>> {
    use burn::backend::ndarray::NdArrayTensor;
    match prim.downcast_ref::<NdArrayTensor>()? {
        NdArrayTensor::F32(storage) => storage.view().as_slice().map(<[f32]>::to_vec),
        _ => None,
    }
}

/// Runs `scan` on host copies of the tensors (any backend).
#[allow(clippy::too_many_arguments)]
pub fn host_scan<B: Backend>(
    scan: &dyn SelectiveScan,
    u: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    d: Tensor<B, 1>,
    delta_bias: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [batch, channels, len] = u.dims();
    let [_, groups, d_state, _] = b.dims();
    let device = u.device();
    let dims = ScanDims {
        batch,
        channels,
        len,
        d_state,
        groups,
    };
    let (u, delta, a, b, c, d, bias) = (
        host(u),
        host(delta),
        host(a),
        host(b),
        host(c),
        host(d),
        host(delta_bias),
    );
    let inputs = ScanInputs {
        dims,
        u: &u,
        delta: &delta,
        a: &a,
        b: &b,
        c: &c,
        d: &d,
        delta_bias: &bias,
        delta_softplus: true,
    };
    let y = scan
        .forward(&inputs)
        .unwrap_or_else(|e| panic!("selective scan called with inconsistent shapes: {e}"));
    Tensor::from_data(TensorData::new(y, [batch, channels, len]), &device)
}
