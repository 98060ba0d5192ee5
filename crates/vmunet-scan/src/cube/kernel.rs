//! The CubeCL kernels of the cross scan (see the module docs in `mod.rs` for the design).
//!
//! Every buffer is a contiguous float32 tensor indexed linearly; shapes are given in the
//! comments. `N` batch, `K` = 4 directions, `L = H W` positions, `D` channels per direction,
//! `S` states, `R` delta rank, `P = R + 2S`, `T` chunk length, `NCH = ceil(L / T)` chunks,
//! `NB` channel blocks of the backward, `DP = NB * block` padded channels.

// Inside `#[cube]` functions: `usize::div_ceil` has no CubeCL expansion, and `if comptime_flag`
// must stay apart from the runtime condition it guards.
#![allow(
    clippy::too_many_arguments,
    clippy::manual_div_ceil,
    clippy::collapsible_if
)]

use cubecl::prelude::*;

/// Row-major position visited at step `t` of direction `k` (same as [`crate::position`]).
#[cube]
fn position(k: usize, t: usize, len: usize, height: usize, width: usize) -> usize {
    let mut tt = t;
    if k >= 2 {
        tt = len - 1 - t;
    }
    let mut pos = tt;
    if k % 2 == 1 {
        // Column-major order: tt = w * H + h.
        pos = (tt % height) * width + tt / height;
    }
    pos
}

/// PyTorch's softplus (threshold 20) with an accurate `log1p` (WGSL's `log1p` is `log(1 + x)`).
#[cube]
fn softplus(x: f32) -> f32 {
    let mut out = x;
    if x <= 20.0f32 {
        let e = x.exp();
        let w = 1.0f32 + e;
        if w == 1.0f32 {
            out = e;
        } else {
            // log1p(e) = ln(w) * e / (w - 1): exact up to rounding of ln (Goldberg's trick).
            out = w.ln() * (e / (w - 1.0f32));
        }
    }
    out
}

/// Derivative of [`softplus`] (the logistic function), `1` above the threshold.
#[cube]
fn softplus_grad(x: f32) -> f32 {
    let mut out = 1.0f32;
    if x <= 20.0f32 {
        out = 1.0f32 / (1.0f32 + (-x).exp());
    }
    out
}

/// Forward scan: one unit per `(batch, direction, channel)`, sequential over the `L` steps
/// with the `S` states in registers.
///
/// Grid: `(ceil(D / CUBE_DIM_X), K, N)`. Writes `y_dir` `(N, K, L, D)` (the direction's output
/// at each row-major position, D skip included) when `write_y`, and the state entering every
/// chunk, `states` `(N, K, NCH, S, D)`, when `write_states`. The buffer not written may be a
/// one-element placeholder.
#[cube(launch)]
pub(crate) fn scan_forward_kernel(
    u: &Tensor<f32>,
    delta: &Tensor<f32>,
    x_dbl: &Tensor<f32>,
    a: &Tensor<f32>,
    d_skip: &Tensor<f32>,
    delta_bias: &Tensor<f32>,
    y_dir: &mut Tensor<f32>,
    states: &mut Tensor<f32>,
    height: usize,
    width: usize,
    channels: usize,
    dt_rank: usize,
    #[comptime] d_state: usize,
    #[comptime] chunk: usize,
    #[comptime] write_y: bool,
    #[comptime] write_states: bool,
) {
    let c = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    let k = CUBE_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    if c >= channels {
        terminate!();
    }
    let len = height * width;
    let n_dir = 4usize;
    let proj = dt_rank + 2 * d_state;
    let n_chunks = (len + chunk - 1) / chunk;
    let ch = k * channels + c;

    let mut a_row = Array::<f32>::new(d_state);
    let mut h = Array::<f32>::new(d_state);
    for s in 0..d_state {
        a_row[s] = a[ch * d_state + s];
        h[s] = 0.0f32;
    }
    let skip = d_skip[ch];
    let bias = delta_bias[ch];

    for t in 0..len {
        if write_states {
            if t % chunk == 0 {
                let base = ((b * n_dir + k) * n_chunks + t / chunk) * d_state;
                for s in 0..d_state {
                    states[(base + s) * channels + c] = h[s];
                }
            }
        }
        let pos = position(k, t, len, height, width);
        let uu = u[(b * len + pos) * channels + c];
        let dt = softplus(delta[((b * n_dir + k) * len + pos) * channels + c] + bias);
        let row = ((b * len + pos) * n_dir + k) * proj + dt_rank;
        let dtu = dt * uu;
        let mut y = skip * uu;
        for s in 0..d_state {
            let hs = (dt * a_row[s]).exp() * h[s] + dtu * x_dbl[row + s];
            h[s] = hs;
            y += hs * x_dbl[row + d_state + s];
        }
        if write_y {
            y_dir[((b * n_dir + k) * len + pos) * channels + c] = y;
        }
    }
}

/// Backward scan. One cube per `(channel block, direction, batch)`, one unit per channel;
/// all units of a cube walk the same steps, so they meet at every barrier.
///
/// For each chunk, from the last: recompute the chunk's states from the stored state entering
/// it (`states`, written by [`scan_forward_kernel`]) into the unit's slice of `hist`
/// `(N, K, T, S, DP)`, then walk the chunk backwards carrying the adjoint state in registers.
///
/// Outputs: `du_dir` and `ddelta` `(N, K, L, D)` (per direction; `du` is summed over
/// directions afterwards), `dbc` `(N, K, NB, L, 2S)` the block's partial sums of dB and dC
/// at each row-major position (reduced over the block's channels in shared memory, one pass per
/// step, no atomics), `da` `(N, K D, S)`, `ddb` `(N, 2, K D)` (dD then d(delta_bias)), per batch.
#[cube(launch)]
pub(crate) fn scan_backward_kernel(
    u: &Tensor<f32>,
    delta: &Tensor<f32>,
    x_dbl: &Tensor<f32>,
    a: &Tensor<f32>,
    d_skip: &Tensor<f32>,
    delta_bias: &Tensor<f32>,
    dy: &Tensor<f32>,
    states: &Tensor<f32>,
    hist: &mut Tensor<f32>,
    du_dir: &mut Tensor<f32>,
    ddelta: &mut Tensor<f32>,
    dbc: &mut Tensor<f32>,
    da: &mut Tensor<f32>,
    ddb: &mut Tensor<f32>,
    height: usize,
    width: usize,
    channels: usize,
    dt_rank: usize,
    #[comptime] d_state: usize,
    #[comptime] chunk: usize,
    #[comptime] block: usize,
) {
    let unit = UNIT_POS_X as usize;
    let blk = CUBE_POS_X as usize;
    let n_blocks = CUBE_COUNT_X as usize;
    let k = CUBE_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    let cp = blk * block + unit;
    let padded = n_blocks * block;
    let valid = cp < channels;
    // Padding units compute on the last channel (finite values) but write nothing outside
    // their own `hist` slice and contribute zeros to the reductions.
    let mut c = cp;
    if !valid {
        c = channels - 1;
    }
    let len = height * width;
    let n_dir = 4usize;
    let proj = dt_rank + 2 * d_state;
    let n_chunks = (len + chunk - 1) / chunk;
    let ch = k * channels + c;
    let two_s = 2 * d_state;
    let stride = block + 1;

    let mut smem = SharedMemory::<f32>::new(2 * d_state * (block + 1));

    let mut a_row = Array::<f32>::new(d_state);
    let mut h = Array::<f32>::new(d_state);
    let mut h_in = Array::<f32>::new(d_state);
    let mut g = Array::<f32>::new(d_state);
    let mut decay_next = Array::<f32>::new(d_state);
    let mut da_acc = Array::<f32>::new(d_state);
    for s in 0..d_state {
        a_row[s] = a[ch * d_state + s];
        g[s] = 0.0f32;
        decay_next[s] = 0.0f32;
        da_acc[s] = 0.0f32;
    }
    let skip = d_skip[ch];
    let bias = delta_bias[ch];
    let mut dd_acc = 0.0f32;
    let mut dbias_acc = 0.0f32;
    let hist_base = (b * n_dir + k) * chunk;

    for jj in 0..n_chunks {
        let j = n_chunks - 1 - jj;
        let t0 = j * chunk;
        let mut steps = len - t0;
        if steps > chunk {
            steps = chunk;
        }
        // Recompute the chunk's states.
        let sbase = ((b * n_dir + k) * n_chunks + j) * d_state;
        for s in 0..d_state {
            let v = states[(sbase + s) * channels + c];
            h_in[s] = v;
            h[s] = v;
        }
        for i in 0..steps {
            let pos = position(k, t0 + i, len, height, width);
            let uu = u[(b * len + pos) * channels + c];
            let dt = softplus(delta[((b * n_dir + k) * len + pos) * channels + c] + bias);
            let row = ((b * len + pos) * n_dir + k) * proj + dt_rank;
            let dtu = dt * uu;
            for s in 0..d_state {
                let hs = (dt * a_row[s]).exp() * h[s] + dtu * x_dbl[row + s];
                h[s] = hs;
                hist[((hist_base + i) * d_state + s) * padded + cp] = hs;
            }
        }
        // Walk the chunk backwards.
        for ii in 0..steps {
            let i = steps - 1 - ii;
            let pos = position(k, t0 + i, len, height, width);
            let xi = ((b * n_dir + k) * len + pos) * channels + c;
            let uu = u[(b * len + pos) * channels + c];
            let raw = delta[xi] + bias;
            let dt = softplus(raw);
            let row = ((b * len + pos) * n_dir + k) * proj + dt_rank;
            let dyl = dy[(b * len + pos) * channels + c];
            dd_acc += dyl * uu;
            let mut du = dyl * skip;
            let mut ddt = 0.0f32;
            for s in 0..d_state {
                let bs = x_dbl[row + s];
                let cs = x_dbl[row + d_state + s];
                let hs = hist[((hist_base + i) * d_state + s) * padded + cp];
                let mut hp = h_in[s];
                if i > 0 {
                    hp = hist[((hist_base + i - 1) * d_state + s) * padded + cp];
                }
                let decay = (dt * a_row[s]).exp();
                let gs = dyl * cs + decay_next[s] * g[s];
                g[s] = gs;
                decay_next[s] = decay;
                ddt += gs * (a_row[s] * decay * hp + bs * uu);
                da_acc[s] += gs * dt * decay * hp;
                du += gs * dt * bs;
                let mut db_part = gs * dt * uu;
                let mut dc_part = dyl * hs;
                if !valid {
                    db_part = 0.0f32;
                    dc_part = 0.0f32;
                }
                smem[s * stride + unit] = db_part;
                smem[(d_state + s) * stride + unit] = dc_part;
            }
            let draw = ddt * softplus_grad(raw);
            dbias_acc += draw;
            if valid {
                du_dir[xi] = du;
                ddelta[xi] = draw;
            }
            sync_cube();
            // Column sums over the block's channels: unit `col` sums column `col`.
            let out_base = (((b * n_dir + k) * n_blocks + blk) * len + pos) * two_s;
            let mut col = unit;
            while col < two_s {
                let mut acc = 0.0f32;
                for m in 0..block {
                    acc += smem[col * stride + m];
                }
                dbc[out_base + col] = acc;
                col += block;
            }
            sync_cube();
        }
    }

    if valid {
        let kc = k * channels + cp;
        for s in 0..d_state {
            da[(b * n_dir * channels + kc) * d_state + s] = da_acc[s];
        }
        ddb[(b * 2) * n_dir * channels + kc] = dd_acc;
        ddb[(b * 2 + 1) * n_dir * channels + kc] = dbias_acc;
    }
}
