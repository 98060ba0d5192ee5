//! The cross scan as CubeCL kernels: [`ScanBackend`] for burn's CubeCL backend
//! `burn_cubecl::CubeBackend<R, F, I, BT>`, generic over the CubeCL runtime `R`, so one kernel
//! serves burn-wgpu (`burn::backend::Wgpu`, Vulkan/Metal/DX12, lavapipe on CPU-only machines)
//! and burn-cuda (`burn::backend::Cuda`). Enabled by the crate features `wgpu` / `cuda`.
//! Without burn's `fusion` feature (this workspace builds burn without it) `Wgpu` and `Cuda`
//! are plain `CubeBackend`s; with it they are `Fusion<CubeBackend<..>>`, which this module does
//! not cover (that backend keeps the host default of [`ScanBackend`]).
//!
//! # Design
//!
//! The kernels use no float atomics and no plane (subgroup) operations, so they run on Mesa's
//! lavapipe as well as on GPUs. State and arithmetic are float32 whatever the backend's float
//! type (inputs of another dtype are cast to f32 and the results cast back).
//!
//! **Forward** ([`kernel::scan_forward_kernel`]): one unit per `(batch n, direction k,
//! channel c)`, 64 units per cube, sequential over the `L = H W` steps in the direction's
//! order ([`crate::position`]) with the `S` states in registers. Each direction's output
//! (D skip included) goes to `y_dir (N, K, L, D)` at the row-major position, so no two units
//! write the same element; `y = y_dir.sum_dim(1)` (a burn tensor op) adds the four directions.
//! Extra memory: `4 N K L D` bytes.
//!
//! **Backward**: checkpointing by chunks of `T = 64` steps, as the mamba kernel does.
//! 1. The forward kernel runs again without writing `y`, storing the fp32 state entering
//!    every chunk: `states (N, K, NCH, S, D)`, `NCH = ceil(L / T)`.
//! 2. [`kernel::scan_backward_kernel`]: one cube per `(block of B channels, k, n)`, one unit
//!    per channel (`B` = 64 for `S <= 16`, 32 for `S <= 32`, 16 for `S <= 64`). Chunks are
//!    processed from the last: the unit recomputes the chunk's `T` states from the stored
//!    boundary state into its own slice of `hist (N, K, T, S, B * NB)` (global scratch,
//!    channel-innermost so neighbouring units touch neighbouring words), then walks the chunk
//!    backwards carrying the adjoint state (and the next step's decay) in registers.
//!    * `du` and `delta` (raw: chained through softplus) are per `(n, k, position, c)`: written
//!      directly (`du_dir (N, K, L, D)`, summed over `k` by a tensor op since `u` feeds all
//!      four directions; `ddelta (N, K, L, D)` is the gradient itself).
//!    * `dA`, `dD`, `d(delta_bias)` accumulate in registers over the whole sequence and are
//!      written per batch element (`da (N, K D, S)`, `ddb (N, 2, K D)`); a tensor-op sum over
//!      `N` finishes them.
//!    * `dB` and `dC` are shared by the channels of a direction. At every step each unit puts
//!      its `2 S` contributions in shared memory (`2 S (B + 1)` floats, padded against bank
//!      conflicts, at most 8.5 KiB); after a barrier, unit `j` sums column `j` over the block's
//!      channels and writes the block's partial to `dbc (N, K, NB, L, 2 S)` at the row-major
//!      position; a second barrier frees the shared memory for the next step. A tensor-op sum
//!      over the `NB` blocks, a transpose to `(N, L, K, 2S)` and zeros for the `dt` columns give
//!      d(x_dbl).
//!
//! Memory of one backward call, in f32 words: `states N K NCH S D`, `hist N K T S B NB`,
//! `du_dir` and `ddelta` `N K L D` each, `dbc N K NB L 2S`, `da N K D S`, `ddb 2 N K D`,
//! plus the tensor-op results (the gradients themselves).

mod kernel;

use burn::tensor::{DType, FloatDType, Shape, Tensor, TensorPrimitive};
use burn_cubecl::{
    kernel::into_contiguous, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
    BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement,
};
use cubecl::{CubeCount, CubeDim};

use crate::burn_op::{CrossScanTensorGrads, DwConvBackend, ScanBackend};
use crate::dims::CrossScanDims;
use crate::order::DIRECTIONS;

/// Steps between two stored states of the backward (the recompute chunk).
pub const CHUNK: usize = 64;
/// Units per cube of the forward kernel.
const FORWARD_BLOCK: usize = 64;
/// Largest state size the kernels accept.
pub const MAX_D_STATE: usize = 64;

/// Channels per cube of the backward kernel for `d_state` states (keeps the shared memory of
/// the dB/dC reduction under 9 KiB).
fn backward_block(d_state: usize) -> usize {
    match d_state {
        0..=16 => 64,
        17..=32 => 32,
        _ => 16,
    }
}

/// SS2D's depthwise convolution uses burn's own convolution kernels on GPUs.
impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> DwConvBackend
    for CubeBackend<R, F, I, BT>
{
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> ScanBackend
    for CubeBackend<R, F, I, BT>
{
    fn selective_scan_2d(
        dims: CrossScanDims,
        u: Tensor<Self, 3>,
        delta: Tensor<Self, 4>,
        x_dbl: Tensor<Self, 4>,
        a: Tensor<Self, 2>,
        d: Tensor<Self, 1>,
        delta_bias: Tensor<Self, 1>,
    ) -> Tensor<Self, 3> {
        let dtype = u.dtype();
        let device = u.device();
        let (n, l, c) = (dims.batch, dims.len(), dims.channels);
        let args = Args::new(dims, u, delta, x_dbl, a, d, delta_bias);
        if n * l * c == 0 {
            return Tensor::<Self, 3>::zeros([n, l, c], &device).cast(dtype);
        }
        let y_dir = args.empty(&[n, DIRECTIONS, l, c]);
        let placeholder = args.empty(&[1]);
        args.forward(y_dir.clone(), placeholder, true, false);
        let y_dir: Tensor<Self, 4> = tensor(y_dir);
        y_dir.sum_dim(1).reshape([n, l, c]).cast(dtype)
    }

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
        let dtype = u.dtype();
        let device = u.device();
        let (n, l, c, s, r, k) = (
            dims.batch,
            dims.len(),
            dims.channels,
            dims.d_state,
            dims.dt_rank,
            DIRECTIONS,
        );
        let dy = f32_contiguous(dy);
        check_shape("dy", &dy, &[n, l, c]);
        let args = Args::new(dims, u, delta, x_dbl, a, d, delta_bias);
        if n * l * c == 0 {
            let z = |shape: Vec<usize>| -> Tensor<Self, 1> {
                Tensor::<Self, 1>::zeros([shape.iter().product::<usize>()], &device).cast(dtype)
            };
            return CrossScanTensorGrads {
                u: z(vec![n, l, c]).reshape([n, l, c]),
                delta: z(vec![n, k, l, c]).reshape([n, k, l, c]),
                x_dbl: z(vec![n, l, k, dims.proj()]).reshape([n, l, k, dims.proj()]),
                a: z(vec![k * c, s]).reshape([k * c, s]),
                d: z(vec![k * c]),
                delta_bias: z(vec![k * c]),
            };
        }

        // 1. States entering every chunk.
        let n_chunks = l.div_ceil(CHUNK);
        let states = args.empty(&[n, k, n_chunks, s, c]);
        let placeholder = args.empty(&[1]);
        args.forward(placeholder, states.clone(), false, true);

        // 2. Backward by chunks.
        let block = backward_block(s);
        let n_blocks = c.div_ceil(block);
        let hist = args.empty(&[n, k, CHUNK, s, n_blocks * block]);
        let du_dir = args.empty(&[n, k, l, c]);
        let ddelta = args.empty(&[n, k, l, c]);
        let dbc = args.empty(&[n, k, n_blocks, l, 2 * s]);
        let da = args.empty(&[n, k * c, s]);
        let ddb = args.empty(&[n, 2, k * c]);
        kernel::scan_backward_kernel::launch::<R>(
            &args.u.client,
            CubeCount::Static(n_blocks as u32, k as u32, n as u32),
            CubeDim::new_1d(block as u32),
            args.u.clone().into_tensor_arg(),
            args.delta.clone().into_tensor_arg(),
            args.x_dbl.clone().into_tensor_arg(),
            args.a.clone().into_tensor_arg(),
            args.d.clone().into_tensor_arg(),
            args.delta_bias.clone().into_tensor_arg(),
            dy.into_tensor_arg(),
            states.into_tensor_arg(),
            hist.into_tensor_arg(),
            du_dir.clone().into_tensor_arg(),
            ddelta.clone().into_tensor_arg(),
            dbc.clone().into_tensor_arg(),
            da.clone().into_tensor_arg(),
            ddb.clone().into_tensor_arg(),
            dims.height,
            dims.width,
            c,
            r,
            s,
            CHUNK,
            block,
        );

        // 3. Reductions with tensor ops.
        let du: Tensor<Self, 4> = tensor(du_dir);
        let du = du.sum_dim(1).reshape([n, l, c]);
        let ddelta: Tensor<Self, 4> = tensor(ddelta);
        let dbc: Tensor<Self, 5> = tensor(dbc);
        let dbc = dbc.sum_dim(2).reshape([n, k, l, 2 * s]).swap_dims(1, 2);
        let dx_dbl = if r == 0 {
            dbc
        } else {
            Tensor::cat(vec![Tensor::zeros([n, l, k, r], &device), dbc], 3)
        };
        let da: Tensor<Self, 3> = tensor(da);
        let da = da.sum_dim(0).reshape([k * c, s]);
        let ddb: Tensor<Self, 3> = tensor(ddb);
        let ddb = ddb.sum_dim(0).reshape([2, k * c]);
        let dd = ddb.clone().narrow(0, 0, 1).reshape([k * c]);
        let dbias = ddb.narrow(0, 1, 1).reshape([k * c]);
        CrossScanTensorGrads {
            u: du.cast(dtype),
            delta: ddelta.cast(dtype),
            x_dbl: dx_dbl.cast(dtype),
            a: da.cast(dtype),
            d: dd.cast(dtype),
            delta_bias: dbias.cast(dtype),
        }
    }
}

/// The six scan inputs as contiguous f32 cube tensors, shapes checked.
struct Args<R: CubeRuntime> {
    dims: CrossScanDims,
    u: CubeTensor<R>,
    delta: CubeTensor<R>,
    x_dbl: CubeTensor<R>,
    a: CubeTensor<R>,
    d: CubeTensor<R>,
    delta_bias: CubeTensor<R>,
}

impl<R: CubeRuntime> Args<R> {
    #[allow(clippy::too_many_arguments)]
    fn new<B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
        dims: CrossScanDims,
        u: Tensor<B, 3>,
        delta: Tensor<B, 4>,
        x_dbl: Tensor<B, 4>,
        a: Tensor<B, 2>,
        d: Tensor<B, 1>,
        delta_bias: Tensor<B, 1>,
    ) -> Self {
        let (n, l, c, s, k) = (
            dims.batch,
            dims.len(),
            dims.channels,
            dims.d_state,
            DIRECTIONS,
        );
        assert!(
            (1..=MAX_D_STATE).contains(&s),
            "cube cross scan: d_state {s} outside 1..={MAX_D_STATE}"
        );
        let args = Args {
            dims,
            u: f32_contiguous(u),
            delta: f32_contiguous(delta),
            x_dbl: f32_contiguous(x_dbl),
            a: f32_contiguous(a),
            d: f32_contiguous(d),
            delta_bias: f32_contiguous(delta_bias),
        };
        check_shape("u", &args.u, &[n, l, c]);
        check_shape("delta", &args.delta, &[n, k, l, c]);
        check_shape("x_dbl", &args.x_dbl, &[n, l, k, dims.proj()]);
        check_shape("A", &args.a, &[k * c, s]);
        check_shape("D", &args.d, &[k * c]);
        check_shape("delta_bias", &args.delta_bias, &[k * c]);
        args
    }

    /// A contiguous, uninitialised f32 buffer on the inputs' device.
    fn empty(&self, shape: &[usize]) -> CubeTensor<R> {
        empty_device_contiguous_dtype::<R>(
            self.u.client.clone(),
            self.u.device.clone(),
            Shape::from(shape.to_vec()),
            DType::F32,
        )
    }

    /// Launches the forward kernel (writing `y_dir` and/or `states`).
    fn forward(
        &self,
        y_dir: CubeTensor<R>,
        states: CubeTensor<R>,
        write_y: bool,
        write_states: bool,
    ) {
        let d = self.dims;
        kernel::scan_forward_kernel::launch::<R>(
            &self.u.client,
            CubeCount::Static(
                d.channels.div_ceil(FORWARD_BLOCK) as u32,
                DIRECTIONS as u32,
                d.batch as u32,
            ),
            CubeDim::new_1d(FORWARD_BLOCK as u32),
            self.u.clone().into_tensor_arg(),
            self.delta.clone().into_tensor_arg(),
            self.x_dbl.clone().into_tensor_arg(),
            self.a.clone().into_tensor_arg(),
            self.d.clone().into_tensor_arg(),
            self.delta_bias.clone().into_tensor_arg(),
            y_dir.into_tensor_arg(),
            states.into_tensor_arg(),
            d.height,
            d.width,
            d.channels,
            d.dt_rank,
            d.d_state,
            CHUNK,
            write_y,
            write_states,
        );
    }
}

/// The tensor's primitive as a contiguous f32 cube tensor.
fn f32_contiguous<B, const N: usize, R>(t: Tensor<B, N>) -> CubeTensor<R>
where
    R: CubeRuntime,
    B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>,
{
    let t = if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(FloatDType::F32)
    };
    into_contiguous(t.into_primitive().tensor())
}

/// Wraps a cube tensor as a burn tensor.
fn tensor<B, const N: usize, R>(t: CubeTensor<R>) -> Tensor<B, N>
where
    R: CubeRuntime,
    B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>,
{
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn check_shape<R: CubeRuntime>(name: &str, t: &CubeTensor<R>, want: &[usize]) {
    let got = t.meta.shape();
    assert!(
        got.iter().eq(want.iter()),
        "cube cross scan: `{name}` has shape {got:?}, expected {want:?}"
    );
}
