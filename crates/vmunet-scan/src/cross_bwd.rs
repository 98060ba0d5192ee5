//! Backward pass of the cross scan ([`cross_scan_backward`]) in channels-last layout, eight
//! channels per SIMD lane group.
//!
//! Work is split into tasks `(batch element, channel range)`, with at most [`TASKS_PER_BATCH`]
//! ranges per batch element whatever the thread count, and every sum across tasks is taken in
//! task order: results are identical from run to run and on any number of threads.
//!
//! Per task and per eight-channel block, for each direction:
//! 1. `dt = softplus(delta + bias)` for every step (stored, `L x 8`);
//! 2. the forward recurrence is run again, storing every state (`L x S x 8` f32);
//! 3. the sequence is walked backwards carrying the adjoint state and the next step's decay.
//!    `du`, `d(delta)`, `dA`, `dD`, `d(delta_bias)` are per channel; `dB` and `dC` are summed
//!    over the block's channels at every step and over the task's blocks in order.
//!
//! Arithmetic is float32 (as mamba's CUDA kernel), with branch-free `exp` / `softplus` so the
//! eight-lane loops stay simple; full lane groups run the same steps on SIMD vectors (AVX2 + FMA
//! on x86-64, NEON on aarch64).

use rayon::prelude::*;

use crate::cross::{CrossScanGrads, CrossScanInputs};
use crate::dims::ScanError;
use crate::math::simd::{simd_entry, F32x8};
use crate::math::{fast_exp, fast_sigmoid, fast_softplus, has_simd, LANES};
use crate::order::{position, DIRECTIONS};

type V = [f32; LANES];
/// Channel ranges per batch element (fixed, so the summation order never changes).
const TASKS_PER_BATCH: usize = 4;

/// One task's gradients for channels `c_lo .. c_lo + width` of batch element `b`.
struct TaskOut {
    b: usize,
    c_lo: usize,
    width: usize,
    /// `(L, width)`.
    du: Vec<f32>,
    /// `(K, L, width)`.
    ddelta: Vec<f32>,
    /// `(L, K, 2S)`: dB then dC, summed over the task's channels.
    dbc: Vec<f32>,
    /// `(K, width, S)`.
    da: Vec<f32>,
    /// `(K, width)`.
    dd: Vec<f32>,
    /// `(K, width)`.
    dbias: Vec<f32>,
}

/// Scratch reused across the blocks of a task.
struct Scratch {
    dt: Vec<V>,
    hist: Vec<V>,
}

/// Backward pass of [`crate::cross_scan`] for `dy` `(N, L, D)`: gradients of `sum(y * dy)`,
/// computed channels-last eight channels at a time in float32 (see the module docs).
pub fn cross_scan_backward(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
) -> Result<CrossScanGrads, ScanError> {
    cross_scan_backward_fast(inp, dy, has_simd())
}

/// [`cross_scan_backward`] with the SIMD kernel when `simd` (true only where the CPU has the
/// instruction set), the portable one otherwise.
fn cross_scan_backward_fast(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
    simd: bool,
) -> Result<CrossScanGrads, ScanError> {
    inp.validate_backward(dy)?;
    let d = inp.dims;
    let (n, l, c, k, s, r, p) = (
        d.batch,
        d.len(),
        d.channels,
        DIRECTIONS,
        d.d_state,
        d.dt_rank,
        d.proj(),
    );
    let mut out = CrossScanGrads {
        u: vec![0.0; n * l * c],
        delta: vec![0.0; n * k * l * c],
        x_dbl: vec![0.0; n * l * k * p],
        a: vec![0.0; k * c * s],
        d: vec![0.0; k * c],
        delta_bias: vec![0.0; k * c],
    };
    if n * l * c == 0 {
        return Ok(out);
    }
    let blocks = c.div_ceil(LANES);
    let per_batch = blocks.min(TASKS_PER_BATCH);
    let tasks: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|b| {
            (0..per_batch).map(move |g| {
                let (lo, hi) = (g * blocks / per_batch, (g + 1) * blocks / per_batch);
                (b, lo * LANES, (hi * LANES).min(c))
            })
        })
        .collect();
    let parts: Vec<TaskOut> = tasks
        .par_iter()
        .map(|&(b, c_lo, c_hi)| {
            let width = c_hi - c_lo;
            let mut t = TaskOut {
                b,
                c_lo,
                width,
                du: vec![0.0; l * width],
                ddelta: vec![0.0; k * l * width],
                dbc: vec![0.0; l * k * 2 * s],
                da: vec![0.0; k * width * s],
                dd: vec![0.0; k * width],
                dbias: vec![0.0; k * width],
            };
            let mut scratch = Scratch {
                dt: vec![[0.0; LANES]; l],
                hist: vec![[0.0; LANES]; l * s],
            };
            for c0 in (c_lo..c_hi).step_by(LANES) {
                let lanes = LANES.min(c_hi - c0);
                for ki in 0..k {
                    block(inp, dy, b, ki, c0, lanes, &mut t, &mut scratch, simd);
                }
            }
            t
        })
        .collect();
    for t in &parts {
        let (b, w) = (t.b, t.width);
        for pos in 0..l {
            out.u[(b * l + pos) * c + t.c_lo..][..w].copy_from_slice(&t.du[pos * w..][..w]);
            for ki in 0..k {
                out.delta[((b * k + ki) * l + pos) * c + t.c_lo..][..w]
                    .copy_from_slice(&t.ddelta[(ki * l + pos) * w..][..w]);
                let dst = &mut out.x_dbl[((b * l + pos) * k + ki) * p + r..][..2 * s];
                for (o, v) in dst
                    .iter_mut()
                    .zip(&t.dbc[(pos * k + ki) * 2 * s..][..2 * s])
                {
                    *o += v;
                }
            }
        }
        for ki in 0..k {
            for j in 0..w {
                let ch = ki * c + t.c_lo + j;
                out.d[ch] += t.dd[ki * w + j];
                out.delta_bias[ch] += t.dbias[ki * w + j];
                for si in 0..s {
                    out.a[ch * s + si] += t.da[(ki * w + j) * s + si];
                }
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn block(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
    b: usize,
    ki: usize,
    c0: usize,
    lanes: usize,
    t: &mut TaskOut,
    scratch: &mut Scratch,
    simd: bool,
) {
    if simd && lanes == LANES {
        // SAFETY: the caller checked that the CPU has the SIMD instruction set; all eight
        // lanes are real channels, so every eight-float load and store stays in bounds.
        unsafe { block_fast(inp, dy, b, ki, c0, t, scratch) };
    } else {
        block_body(inp, dy, b, ki, c0, lanes, t, scratch);
    }
}

simd_entry! {
    /// [`block_simd`] for the CPU's instruction set (callers check [`has_simd`]).
    unsafe fn block_fast(
        inp: &CrossScanInputs<'_>,
        dy: &[f32],
        b: usize,
        ki: usize,
        c0: usize,
        t: &mut TaskOut,
        scratch: &mut Scratch,
    ) => block_simd
}

/// [`block_body`] on eight-lane SIMD vectors, eight full lanes.
#[inline(always)]
unsafe fn block_simd<S: F32x8>(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
    b: usize,
    ki: usize,
    c0: usize,
    t: &mut TaskOut,
    scratch: &mut Scratch,
) {
    let d = inp.dims;
    let (l, c, s, r, p, k) = (
        d.len(),
        d.channels,
        d.d_state,
        d.dt_rank,
        d.proj(),
        DIRECTIONS,
    );
    let (w, j0) = (t.width, c0 - t.c_lo);
    let ch0 = ki * c + c0;
    let zero = S::zero();
    let one = S::splat(1.0);
    let mut a = vec![zero; s];
    let mut lane = [0f32; LANES];
    for (si, av) in a.iter_mut().enumerate() {
        for (j, v) in lane.iter_mut().enumerate() {
            *v = inp.a[(ch0 + j) * s + si];
        }
        *av = S::load(&lane);
    }
    let dskip = S::load(&inp.d[ch0..]);
    let bias = S::load(&inp.delta_bias[ch0..]);
    let delta_base = (b * k + ki) * l * c;
    let row_at = |pos: usize| &inp.x_dbl[((b * l + pos) * k + ki) * p + r..][..2 * s];

    let mut h = vec![zero; s];
    for step in 0..l {
        let pos = position(ki, step, &d);
        let dt = S::load(&inp.delta[delta_base + pos * c + c0..])
            .add(bias)
            .softplus();
        dt.store(&mut scratch.dt[step]);
        let du = dt.mul(S::load(&inp.u[(b * l + pos) * c + c0..]));
        let row = row_at(pos);
        for si in 0..s {
            let decay = dt.mul(a[si]).exp();
            h[si] = decay.mul_add(h[si], du.mul(S::splat(row[si])));
            h[si].store(&mut scratch.hist[step * s + si]);
        }
    }

    let mut g = vec![zero; s];
    let mut decay_next = vec![zero; s];
    let mut da = vec![zero; s];
    let (mut dd, mut dbias) = (zero, zero);
    for step in (0..l).rev() {
        let pos = position(ki, step, &d);
        let dt = S::load(&scratch.dt[step]);
        let u = S::load(&inp.u[(b * l + pos) * c + c0..]);
        let dyv = S::load(&dy[(b * l + pos) * c + c0..]);
        let row = row_at(pos);
        dd = dyv.mul_add(u, dd);
        let mut du = dyv.mul(dskip);
        let mut ddt = zero;
        let dtu = dt.mul(u);
        let dbc = &mut t.dbc[(pos * k + ki) * 2 * s..][..2 * s];
        for si in 0..s {
            let (bs, cs) = (S::splat(row[si]), S::splat(row[s + si]));
            let hs = S::load(&scratch.hist[step * s + si]);
            let hp = if step > 0 {
                S::load(&scratch.hist[(step - 1) * s + si])
            } else {
                zero
            };
            let decay = dt.mul(a[si]).exp();
            let gn = decay_next[si].mul_add(g[si], dyv.mul(cs));
            g[si] = gn;
            decay_next[si] = decay;
            dbc[si] += gn.mul(dtu).hsum();
            dbc[s + si] += dyv.mul(hs).hsum();
            let dh = decay.mul(hp);
            ddt = gn.mul_add(a[si].mul_add(dh, bs.mul(u)), ddt);
            let gdt = gn.mul(dt);
            da[si] = gdt.mul_add(dh, da[si]);
            du = gdt.mul_add(bs, du);
        }
        let o = pos * w + j0;
        S::load(&t.du[o..]).add(du).store(&mut t.du[o..]);
        let raw = S::load(&inp.delta[delta_base + pos * c + c0..]).add(bias);
        let sig = one.div(one.add(zero.sub(raw).exp()));
        let v = ddt.mul(sig);
        v.store(&mut t.ddelta[(ki * l + pos) * w + j0..]);
        dbias = dbias.add(v);
    }
    let o = ki * w + j0;
    S::load(&t.dd[o..]).add(dd).store(&mut t.dd[o..]);
    S::load(&t.dbias[o..]).add(dbias).store(&mut t.dbias[o..]);
    for (si, v) in da.iter().enumerate() {
        v.store(&mut lane);
        for (j, x) in lane.iter().enumerate() {
            t.da[(o + j) * s + si] += x;
        }
    }
}

/// Loads `lanes` values at `src[off..]` into a vector, zeros beyond.
#[inline(always)]
fn load(src: &[f32], off: usize, lanes: usize) -> V {
    let mut v = [0.0; LANES];
    v[..lanes].copy_from_slice(&src[off..off + lanes]);
    v
}

/// Sum of the eight lanes in a fixed tree order (vectorisable, deterministic).
#[inline(always)]
fn hsum(v: &V) -> f32 {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// Portable version (and partial lane groups): scalar loops over the eight lanes.
#[allow(clippy::too_many_arguments)]
fn block_body(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
    b: usize,
    ki: usize,
    c0: usize,
    lanes: usize,
    t: &mut TaskOut,
    scratch: &mut Scratch,
) {
    let d = inp.dims;
    let (l, c, s, r, p, k) = (
        d.len(),
        d.channels,
        d.d_state,
        d.dt_rank,
        d.proj(),
        DIRECTIONS,
    );
    let (w, j0) = (t.width, c0 - t.c_lo);
    let ch0 = ki * c + c0;
    // Per-lane parameters; padded lanes get A = 0, u = dy = 0 and contribute nothing.
    let mut a = vec![[0f32; LANES]; s];
    for (si, av) in a.iter_mut().enumerate() {
        for (j, v) in av.iter_mut().enumerate().take(lanes) {
            *v = inp.a[(ch0 + j) * s + si];
        }
    }
    let dskip = load(inp.d, ch0, lanes);
    let bias = load(inp.delta_bias, ch0, lanes);
    let u_at = |pos: usize| load(inp.u, (b * l + pos) * c + c0, lanes);
    let row_at = |pos: usize| &inp.x_dbl[((b * l + pos) * k + ki) * p + r..][..2 * s];
    let delta_base = (b * k + ki) * l * c;

    // 1 + 2: dt for every step, then the states.
    let mut h = vec![[0f32; LANES]; s];
    for step in 0..l {
        let pos = position(ki, step, &d);
        let raw = load(inp.delta, delta_base + pos * c + c0, lanes);
        let mut dt = [0f32; LANES];
        for j in 0..LANES {
            dt[j] = fast_softplus(raw[j] + bias[j]);
        }
        scratch.dt[step] = dt;
        let u = u_at(pos);
        let row = row_at(pos);
        let mut du = [0f32; LANES];
        for j in 0..LANES {
            du[j] = dt[j] * u[j];
        }
        for si in 0..s {
            let bs = row[si];
            let hs = &mut h[si];
            for j in 0..LANES {
                hs[j] = fast_exp(dt[j] * a[si][j]) * hs[j] + du[j] * bs;
            }
            scratch.hist[step * s + si] = *hs;
        }
    }

    // 3: backwards.
    let mut g = vec![[0f32; LANES]; s];
    let mut decay_next = vec![[0f32; LANES]; s];
    let mut da = vec![[0f32; LANES]; s];
    let (mut dd, mut dbias) = ([0f32; LANES], [0f32; LANES]);
    let zero = [0f32; LANES];
    for step in (0..l).rev() {
        let pos = position(ki, step, &d);
        let dt = scratch.dt[step];
        let u = u_at(pos);
        let dyv = load(dy, (b * l + pos) * c + c0, lanes);
        let row = row_at(pos);
        let (mut du, mut ddt, mut dtu) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        for j in 0..LANES {
            dd[j] += dyv[j] * u[j];
            du[j] = dyv[j] * dskip[j];
            dtu[j] = dt[j] * u[j];
        }
        let dbc = &mut t.dbc[(pos * k + ki) * 2 * s..][..2 * s];
        for si in 0..s {
            let (bs, cs) = (row[si], row[s + si]);
            let hs = &scratch.hist[step * s + si];
            let hp = if step > 0 {
                &scratch.hist[(step - 1) * s + si]
            } else {
                &zero
            };
            let (gs, dn, das) = (&mut g[si], &mut decay_next[si], &mut da[si]);
            let (mut db_l, mut dc_l) = ([0f32; LANES], [0f32; LANES]);
            for j in 0..LANES {
                let decay = fast_exp(dt[j] * a[si][j]);
                let gn = dyv[j] * cs + dn[j] * gs[j];
                gs[j] = gn;
                dn[j] = decay;
                dc_l[j] = dyv[j] * hs[j];
                db_l[j] = gn * dtu[j];
                let dh = decay * hp[j];
                ddt[j] += gn * (a[si][j] * dh + bs * u[j]);
                das[j] += gn * dt[j] * dh;
                du[j] += gn * dt[j] * bs;
            }
            dbc[si] += hsum(&db_l);
            dbc[s + si] += hsum(&dc_l);
        }
        let du_dst = &mut t.du[pos * w + j0..][..lanes];
        for (o, v) in du_dst.iter_mut().zip(&du) {
            *o += v;
        }
        let dl = &mut t.ddelta[(ki * l + pos) * w + j0..][..lanes];
        let raw = load(inp.delta, delta_base + pos * c + c0, lanes);
        for j in 0..lanes {
            let v = ddt[j] * fast_sigmoid(raw[j] + bias[j]);
            dl[j] = v;
            dbias[j] += v;
        }
    }
    for j in 0..lanes {
        let o = ki * w + j0 + j;
        t.dd[o] += dd[j];
        t.dbias[o] += dbias[j];
        for (si, v) in da.iter().enumerate() {
            t.da[o * s + si] += v[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross::cross_scan_backward_reference;
    use crate::dims::CrossScanDims;
    use proptest::prelude::*;

    struct Rng(u64);
    impl Rng {
        fn vec(&mut self, n: usize, scale: f32, off: f32) -> Vec<f32> {
            (0..n)
                .map(|_| {
                    self.0 = self
                        .0
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale + off
                })
                .collect()
        }
    }

    /// max |got - want| / max |want| per gradient.
    fn rel(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
            / scale
    }

    fn check(dims: CrossScanDims, seed: u64, delta_off: f32) -> Result<(), TestCaseError> {
        let mut r = Rng(seed | 1);
        let (n, l, c, k, s) = (dims.batch, dims.len(), dims.channels, 4, dims.d_state);
        let u = r.vec(n * l * c, 1.0, 0.0);
        let delta = r.vec(n * k * l * c, 2.0, delta_off);
        let x_dbl = r.vec(n * l * k * dims.proj(), 1.0, 0.0);
        let a: Vec<f32> = r
            .vec(k * c * s, 1.0, 0.0)
            .iter()
            .map(|x| -x.exp())
            .collect();
        let d = r.vec(k * c, 1.0, 0.0);
        let bias = r.vec(k * c, 0.5, 0.0);
        let dy = r.vec(n * l * c, 1.0, 0.0);
        let inp = CrossScanInputs {
            dims,
            u: &u,
            delta: &delta,
            x_dbl: &x_dbl,
            a: &a,
            d: &d,
            delta_bias: &bias,
        };
        let want = cross_scan_backward_reference(&inp, &dy).unwrap();
        let simds: &[bool] = if has_simd() { &[false, true] } else { &[false] };
        for &simd in simds {
            let got = cross_scan_backward_fast(&inp, &dy, simd).unwrap();
            for (name, g, w) in [
                ("u", &got.u, &want.u),
                ("delta", &got.delta, &want.delta),
                ("x_dbl", &got.x_dbl, &want.x_dbl),
                ("a", &got.a, &want.a),
                ("d", &got.d, &want.d),
                ("delta_bias", &got.delta_bias, &want.delta_bias),
            ] {
                let e = rel(g, w);
                prop_assert!(
                    e <= 2e-5,
                    "{name}: relative error {e} (simd {simd}, {dims:?})"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Fast channels-last backward against the mamba-layout float64 backward, including
        /// channel counts that leave a partial lane group and large `delta` (softplus linear).
        #[test]
        fn matches_the_reference_backward(
            batch in 1usize..3, height in 1usize..7, width in 1usize..7,
            channels in 1usize..40, d_state in 1usize..17, dt_rank in 1usize..4,
            large in any::<bool>(), seed in any::<u64>(),
        ) {
            let dims = CrossScanDims { batch, height, width, channels, d_state, dt_rank };
            check(dims, seed, if large { 25.0 } else { -1.0 })?;
        }
    }

    #[test]
    fn long_sequences_stay_accurate() {
        let dims = CrossScanDims {
            batch: 2,
            height: 32,
            width: 32,
            channels: 24,
            d_state: 16,
            dt_rank: 2,
        };
        check(dims, 11, -2.0).unwrap();
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let dims = CrossScanDims {
            batch: 3,
            height: 5,
            width: 6,
            channels: 40,
            d_state: 4,
            dt_rank: 2,
        };
        let mut r = Rng(3);
        let (n, l, c, k, s) = (3, 30, 40, 4, 4);
        let bufs = [
            r.vec(n * l * c, 1.0, 0.0),
            r.vec(n * k * l * c, 1.0, 0.0),
            r.vec(n * l * k * dims.proj(), 1.0, 0.0),
            r.vec(k * c * s, 0.5, -1.0),
            r.vec(k * c, 1.0, 0.0),
            r.vec(k * c, 0.5, 0.0),
            r.vec(n * l * c, 1.0, 0.0),
        ];
        let inp = CrossScanInputs {
            dims,
            u: &bufs[0],
            delta: &bufs[1],
            x_dbl: &bufs[2],
            a: &bufs[3],
            d: &bufs[4],
            delta_bias: &bufs[5],
        };
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| cross_scan_backward(&inp, &bufs[6]).unwrap())
        };
        assert_eq!(run(1), run(3));
    }
}
