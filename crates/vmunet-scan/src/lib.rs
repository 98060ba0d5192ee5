//! The selective scan (Mamba's S6 recurrence) as VM-UNet's SS2D calls it.
//!
//! For every batch `b` and channel `c` (with direction group `k = c / (channels / groups)`):
//!
//! ```text
//! dt_l   = softplus(delta[b,c,l] + delta_bias[c])
//! h_l[n] = exp(dt_l * A[c,n]) * h_{l-1}[n] + dt_l * B[b,k,n,l] * u[b,c,l]
//! y[b,c,l] = sum_n C[b,k,n,l] * h_l[n] + D[c] * u[b,c,l]
//! ```
//!
//! Two implementations share the [`SelectiveScan`] interface: [`ReferenceScan`], a sequential
//! float64 transcription of mamba's `selective_scan_ref` (exact, for tests), and [`CpuScan`], a
//! vectorised, multi-threaded float32 kernel (the default). Both provide the backward pass.
//! [`ScanBackend`] connects the scan to burn tensors; [`DwConvBackend`] does the same for
//! SS2D's depthwise convolution ([`depthwise_conv2d`]), whose host version makes CPU training
//! fast.

mod autodiff;
mod backward;
mod burn_op;
mod cpu;
mod cross;
mod cross_bwd;
#[cfg(feature = "cubecl")]
mod cube;
mod dims;
mod dwconv;
mod reference;

pub use burn_op::{
    burn_depthwise_conv2d, burn_depthwise_conv2d_backward, host_scan, selective_scan,
    CrossScanTensorGrads, DwConvBackend, DwConvTensorGrads, ScanBackend,
};
pub use cpu::CpuScan;
pub use cross::{
    cross_scan, cross_scan_backward, cross_scan_backward_reference, cross_scan_op,
    cross_scan_reference, position, CrossScanDims, CrossScanGrads, CrossScanInputs, DIRECTIONS,
};
pub use dims::{ScanDims, ScanError, ScanInputs};
pub use dwconv::{depthwise_conv2d, depthwise_conv2d_backward, DwConvDims, DwConvGrads};
pub use reference::ReferenceScan;

/// Gradients of the scan output with respect to every input, in the inputs' layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanGrads {
    /// d/du, `(B, C, L)`.
    pub u: Vec<f32>,
    /// d/d(delta) before the bias and softplus, `(B, C, L)`.
    pub delta: Vec<f32>,
    /// d/dA, `(C, N)`.
    pub a: Vec<f32>,
    /// d/dB, `(B, K, N, L)`.
    pub b: Vec<f32>,
    /// d/dC, `(B, K, N, L)`.
    pub c: Vec<f32>,
    /// d/dD, `(C)`.
    pub d: Vec<f32>,
    /// d/d(delta_bias), `(C)`.
    pub delta_bias: Vec<f32>,
}

/// A selective-scan implementation: forward and backward over host buffers.
pub trait SelectiveScan: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &'static str;

    /// Computes `y` with layout `(B, C, L)`.
    fn forward(&self, inputs: &ScanInputs<'_>) -> Result<Vec<f32>, ScanError>;

    /// Computes the gradients of `sum(y * dy)` with respect to every input.
    fn backward(&self, inputs: &ScanInputs<'_>, dy: &[f32]) -> Result<ScanGrads, ScanError> {
        inputs.dims.check_len("dy", dy.len(), inputs.dims.x_len())?;
        inputs.validate()?;
        Ok(backward::backward(inputs, dy))
    }
}

/// PyTorch's `softplus` (beta 1, threshold 20): linear above 20.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// `softplus` in float64, same threshold.
#[inline(always)]
pub(crate) fn softplus64(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}
