//! The forward recurrence both fast scans share ([`crate::CpuScan`] in mamba's layout,
//! [`crate::cross_scan`] channels-last), built for throughput.
//!
//! A kernel walks its sequence in tiles of [`TILE`] positions. Its gather pass copies the
//! tile's B and C rows into a [`Tile`] (padded with zeros to a multiple of [`GROUP`] states: a
//! padded state has decay 1 and input 0, so it stays 0), and `u` and `delta` too where its
//! layout does not keep a position's channels together (mamba's `(channel, position)`). Then,
//! for each group of eight channels (one SIMD vector):
//! - [`Tile::prepare`] (gathered `u` / `delta`) or [`Tile::prepare_from`] (read in place, the
//!   channels-last cross scan: a copy would cost more than the reads it saves): per position
//!   `dt = softplus(delta + bias)`, `dt * u` and the skip term `D * u`, in a loop of its own so
//!   the CPU overlaps the positions' long softplus chains;
//! - [`Tile::recur`]: per state one `exp2` (A pre-scaled by log2 e: [`ScaledA`]), one
//!   multiply and two fused multiply-adds; [`GROUP`] states' `exp2` chains interleaved in
//!   program order ([`exp2_n`]), the output summed in two accumulators so the chain over states
//!   does not serialise a step.
//!
//! Needs `A <= 0` (the decays' `exp2` is exact for exponents `<= 127`): the kernels check and
//! fall back to their portable loops otherwise. `A = -exp(A_logs)` always is.

use crate::math::simd::{exp2_n, F32x8};
use crate::math::LANES;

/// Positions per tile: the buffers (3 x 8 floats plus 2 x 16 per position at 16 states,
/// 14 KiB) stay in L1.
pub(crate) const TILE: usize = 64;

/// States whose decays are computed together (interleaved `exp2` chains).
pub(crate) const GROUP: usize = 4;

/// One tile's buffers, reused across tiles.
pub(crate) struct Tile {
    /// States rounded up to a multiple of [`GROUP`].
    pub sp: usize,
    /// Channels per position in [`Self::src_u`] / [`Self::src_d`].
    pub width: usize,
    /// Per position, `width` channels of u, as the gather pass left them.
    pub src_u: Vec<f32>,
    /// Per position, `width` channels of raw delta.
    pub src_d: Vec<f32>,
    /// Per position, eight lanes: dt.
    pub dt: Vec<f32>,
    /// Per position, eight lanes: `dt * u`.
    pub du: Vec<f32>,
    /// Per position, eight lanes: the skip term, then the output.
    pub y: Vec<f32>,
    /// Per position the B row then the C row, `sp` each (the padding stays zero).
    pub bc: Vec<f32>,
    /// Per lane, the largest dt [`Self::prepare`] left (NaN dt skipped).
    top_dt: [f32; LANES],
}

impl Tile {
    /// Buffers for `d_state` states and gathers of `width` channels per position.
    pub fn new(d_state: usize, width: usize) -> Self {
        let sp = d_state.div_ceil(GROUP) * GROUP;
        Self {
            sp,
            width,
            src_u: vec![0.0; TILE * width],
            src_d: vec![0.0; TILE * width],
            dt: vec![0.0; TILE * LANES],
            du: vec![0.0; TILE * LANES],
            y: vec![0.0; TILE * LANES],
            bc: vec![0.0; TILE * 2 * sp],
            top_dt: [0.0; LANES],
        }
    }

    /// Copies position `i`'s B and C rows (`d_state` each) into the tile.
    #[inline(always)]
    pub unsafe fn set_bc<S: F32x8>(&mut self, i: usize, b: &[f32], c: &[f32]) {
        let (bs, cs) = self.bc[i * 2 * self.sp..(i + 1) * 2 * self.sp].split_at_mut(self.sp);
        copy::<S>(&mut bs[..b.len()], b);
        copy::<S>(&mut cs[..c.len()], c);
    }

    /// Turns positions `0..n`'s raw delta and u, channels `at..at + 8` of the gathered
    /// `width`, into dt (`delta + bias`, through softplus when `softplus`), `dt * u` and the
    /// skip term.
    #[inline(always)]
    pub unsafe fn prepare<S: F32x8>(
        &mut self,
        n: usize,
        at: usize,
        bias: S,
        dskip: S,
        softplus: bool,
    ) {
        let w = self.width;
        let u = self.src_u.as_ptr().wrapping_add(at);
        let d = self.src_d.as_ptr().wrapping_add(at);
        self.prepare_from(n, [u, d], |i| i * w, bias, dskip, softplus)
    }

    /// [`Self::prepare`] reading position `i`'s eight lanes of u and raw delta where they are,
    /// at `u.add(row(i))` and `delta.add(row(i))`, instead of from the gathered buffers.
    ///
    /// # Safety
    /// Eight floats must be readable at every such address for `i < n`.
    #[inline(always)]
    pub unsafe fn prepare_from<S: F32x8>(
        &mut self,
        n: usize,
        [u, delta]: [*const f32; 2],
        row: impl Fn(usize) -> usize,
        bias: S,
        dskip: S,
        softplus: bool,
    ) {
        let lanes =
            |p: *const f32, i: usize| S::load(std::slice::from_raw_parts(p.add(row(i)), LANES));
        let mut top = S::zero();
        // Four positions per round, written out side by side: the softplus chains are long
        // (about 100 cycles), and a CPU's scheduler only overlaps what sits close together.
        let mut i = 0;
        while i < n {
            let m = (n - i).min(4);
            let mut raw = [S::zero(); 4];
            for (q, v) in raw.iter_mut().enumerate().take(m) {
                *v = lanes(delta, i + q).add(bias);
            }
            let dt = if softplus {
                [
                    raw[0].softplus(),
                    raw[1].softplus(),
                    raw[2].softplus(),
                    raw[3].softplus(),
                ]
            } else {
                raw
            };
            for (q, dt) in dt.iter().enumerate().take(m) {
                let o = (i + q) * LANES;
                // `dt` first: a NaN dt is dropped (AVX2) or makes the maximum NaN (NEON), never
                // the running maximum lost. A NaN dt's own output is NaN on either `exp2` path.
                top = dt.max(top);
                let u = lanes(u, i + q);
                dt.store(&mut self.dt[o..]);
                dt.mul(u).store(&mut self.du[o..]);
                dskip.mul(u).store(&mut self.y[o..]);
            }
            i += m;
        }
        top.store(&mut self.top_dt);
    }

    /// Runs the recurrence over the positions `0..n` [`Self::prepare`] made ready, carrying
    /// `h` (one vector per padded state) from the previous tile; leaves each position's
    /// output in `y`. When every decay exponent `dt * A * log2 e` of the tile is `>= -126`
    /// (the largest dt times the largest `|A log2 e|` per lane; false for NaN), `exp2` runs
    /// without its clamp.
    #[inline(always)]
    pub unsafe fn recur<S: F32x8>(&mut self, n: usize, h: &mut [[S; GROUP]], a: &ScaledA<S>) {
        let bounded = self
            .top_dt
            .iter()
            .zip(&a.max_abs)
            .all(|(d, a)| d * a <= 126.0);
        if bounded {
            self.recur_with::<S, false>(n, h, &a.vecs)
        } else {
            self.recur_with::<S, true>(n, h, &a.vecs)
        }
    }

    #[inline(always)]
    unsafe fn recur_with<S: F32x8, const CLAMP: bool>(
        &mut self,
        n: usize,
        h: &mut [[S; GROUP]],
        a2: &[[S; GROUP]],
    ) {
        let sp = self.sp;
        for i in 0..n {
            let dt = S::load(&self.dt[i * LANES..]);
            let du = S::load(&self.du[i * LANES..]);
            let (bs, cs) = self.bc[i * 2 * sp..(i + 1) * 2 * sp].split_at(sp);
            let mut y = [S::load(&self.y[i * LANES..]), S::zero()];
            for (((hg, ag), bg), cg) in h
                .iter_mut()
                .zip(a2)
                .zip(bs.chunks_exact(GROUP))
                .zip(cs.chunks_exact(GROUP))
            {
                let e = exp2_n::<S, GROUP, CLAMP>(ag.map(|a| dt.mul(a)));
                for g in 0..GROUP {
                    let hn = e[g].mul_add(hg[g], du.mul(S::splat(bg[g])));
                    hg[g] = hn;
                    y[g % 2] = hn.mul_add(S::splat(cg[g]), y[g % 2]);
                }
            }
            y[0].add(y[1]).store(&mut self.y[i * LANES..]);
        }
    }
}

/// `dst = src` with eight-float vector moves (no `memmove` call for a short row).
#[inline(always)]
pub(crate) unsafe fn copy<S: F32x8>(dst: &mut [f32], src: &[f32]) {
    let whole = src.len() / LANES * LANES;
    for q in (0..whole).step_by(LANES) {
        S::load(&src[q..]).store(&mut dst[q..]);
    }
    // The tail (fewer than eight floats) element by element: no `memmove` call.
    for (d, s) in dst[whole..src.len()].iter_mut().zip(&src[whole..]) {
        *d = *s;
    }
}

/// `A * log2 e` for eight channels, as the recurrence reads it.
pub(crate) struct ScaledA<S> {
    /// One vector per state, padded to [`GROUP`]s with zeros.
    pub vecs: Vec<[S; GROUP]>,
    /// Per lane, the largest `|A * log2 e|` over the states.
    pub max_abs: [f32; LANES],
}

/// [`ScaledA`] from `a(j, s)`, lane `j`'s state `s` (lanes past the real channels read as zero
/// by the caller).
#[inline(always)]
pub(crate) unsafe fn scaled_a<S: F32x8>(
    d_state: usize,
    a: impl Fn(usize, usize) -> f32,
) -> ScaledA<S> {
    let mut vecs = vec![[S::zero(); GROUP]; d_state.div_ceil(GROUP)];
    let mut max_abs = [0f32; LANES];
    let mut lane = [0f32; LANES];
    for (si, av) in vecs.iter_mut().flatten().enumerate().take(d_state) {
        for (j, v) in lane.iter_mut().enumerate() {
            *v = a(j, si) * std::f32::consts::LOG2_E;
            max_abs[j] = max_abs[j].max(v.abs());
        }
        *av = S::load(&lane);
    }
    ScaledA { vecs, max_abs }
}
