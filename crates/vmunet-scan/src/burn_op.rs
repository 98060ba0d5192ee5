//! The scan as a burn operation.
//!
//! [`ScanBackend`] is the extension point a backend implements to run the scan its own way
//! (a CubeCL kernel on burn-cuda/burn-wgpu, an autodiff-aware op for training). The default
//! method runs [`CpuScan`] on host buffers, so every backend works out of the box.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::{
    cross_scan, cross_scan_backward, CpuScan, CrossScanDims, CrossScanInputs, ScanDims, ScanInputs,
    SelectiveScan,
};

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
pub trait ScanBackend: Backend {
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
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("selective scan: float tensor converts to f32")
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
