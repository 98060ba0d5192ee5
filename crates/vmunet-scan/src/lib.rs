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
//! [`cross_scan`] and [`cross_scan_backward`] run SS2D's four-direction scan channels-last
//! ([`cross_scan_reference`] and [`cross_scan_backward_reference`] are their ground truths);
//! [`depthwise_conv2d`] is SS2D's depthwise convolution on host buffers.
//!
//! # Features
//!
//! Without features the crate is the host kernels above, on plain `f32` slices: no burn, so a
//! deployment build (the ONNX runtimes' custom operator, [`cross_scan_op`]) does not compile
//! it. The `burn` feature adds `ScanBackend`, which connects the scan to burn tensors,
//! `DwConvBackend`, the same for the depthwise convolution, and their autodiff registration;
//! `wgpu` and `cuda` (both imply `burn`) add the CubeCL kernel for burn-wgpu / burn-cuda.
//!
//! # Modules
//!
//! Modules depend only on the ones listed before them (a DAG; no module imports a later one):
//!
//! 1. leaves: `math` (PyTorch's softplus, branch-free `exp` / `exp2` / `softplus` / `sigmoid`, the
//!    eight-lane SIMD trait `math::simd::F32x8` the fast kernels are written over once, its
//!    AVX2 (`math::avx2`) and NEON (`math::neon`) implementations, the CPU feature check),
//!    `dims` (shapes, inputs, errors; uses `math`), `order` (SS2D's scan orders [`position`] and [`DIRECTIONS`]; uses `dims`),
//!    and `dwconv` (the depthwise convolution; self-contained);
//! 2. `scan`: the [`SelectiveScan`] trait, [`ScanGrads`] and the float64 host backward every
//!    implementation shares;
//! 3. `tile`: the throughput-built forward recurrence both fast kernels share (tiles of
//!    positions, gather / softplus / recurrence passes from L1, interleaved `exp2` decays);
//! 4. `reference` ([`ReferenceScan`]) and `cpu` ([`CpuScan`], portable and SIMD);
//! 5. `cross`: the forward cross scan (portable and SIMD), its reference composition through
//!    mamba's layout and the reference backward, the custom operator's entry point;
//! 6. `cross_bwd`: the fast cross-scan backward, checked against `cross`'s reference;
//! 7. `perf`: the kernel timed at a shape against its arithmetic bound (`vmunet bench --kernel`);
//! 8. with the `burn` feature: `burn_op` (the burn-facing traits over all of the above), then
//!    `autodiff` (their `Autodiff<B>` implementations) and, with `wgpu` / `cuda`, `cube` (the
//!    CubeCL kernel).
//!
//! The crate root only declares the modules and re-exports their public items.

#![deny(missing_docs)]

#[cfg(feature = "burn")]
mod autodiff;
#[cfg(feature = "burn")]
mod burn_op;
mod cpu;
mod cross;
mod cross_bwd;
#[cfg(feature = "cubecl")]
mod cube;
mod dims;
mod dwconv;
mod math;
mod order;
pub mod perf;
mod reference;
mod scan;
mod tile;

#[cfg(feature = "burn")]
pub use burn_op::{
    burn_depthwise_conv2d, burn_depthwise_conv2d_backward, host_scan, selective_scan,
    CrossScanTensorGrads, DwConvBackend, DwConvTensorGrads, ScanBackend,
};
pub use cpu::CpuScan;
pub use cross::{
    cross_scan, cross_scan_backward_reference, cross_scan_op, cross_scan_reference, CrossScanGrads,
    CrossScanInputs,
};
pub use cross_bwd::cross_scan_backward;
pub use dims::{CrossScanDims, ScanDims, ScanError, ScanInputs};
pub use dwconv::{depthwise_conv2d, depthwise_conv2d_backward, DwConvDims, DwConvGrads};
pub use math::{simd_isa, softplus};
pub use order::{position, DIRECTIONS};
pub use reference::ReferenceScan;
pub use scan::{ScanGrads, SelectiveScan};
