//! VM-UNet's four-direction ("cross") selective scan in channels-last layout.
//!
//! SS2D scans the feature map in four orders: row-major, column-major and both reversed.
//! The official code materialises each order (transpose, flip), scans in mamba's layout and
//! maps the outputs back. Here the kernel walks the orders itself: every tensor stays in
//! row-major, channels-last layout and the four outputs are summed in place. The result is
//! identical to the official composition ([`cross_scan_reference`] builds exactly that, for
//! tests).

use rayon::prelude::*;

use crate::dims::{CrossScanDims, ScanDims, ScanError, ScanInputs};
use crate::math::simd::{simd_entry, F32x8};
use crate::math::{fast_exp2, has_simd, prefetch_l2, softplus, LANES};
use crate::order::{position, DIRECTIONS};
use crate::reference::ReferenceScan;
use crate::scan::SelectiveScan;
use crate::tile::{scaled_a, Tile, GROUP, TILE};

/// Runs [`cross_scan`] on six inputs given as `(shape, data)` (the custom ONNX operator's
/// contract): `u (N, H, W, D)`, `delta (N, K, L, D)` before bias and softplus,
/// `x_dbl (N, L, K, R + 2S)`, `A (K D, S)`, `D (K D)`, `delta_bias (K D)`; checks every shape
/// and returns the output `y (N, H, W, D)`, summed over the four directions, D skip included.
pub fn cross_scan_op(inputs: [(&[usize], &[f32]); 6]) -> Result<(Vec<usize>, Vec<f32>), ScanError> {
    let [u, delta, x_dbl, a, d, bias] = inputs;
    let bad = |what: &str| ScanError::Dims(format!("cross scan: {what}"));
    let (&[n, h, w, c], &[_, _, _, p], &[_, s]) = (u.0, x_dbl.0, a.0) else {
        return Err(bad(&format!(
            "expected u (N, H, W, D), x_dbl (N, L, K, P) and A (K D, S); got {:?}, {:?}, {:?}",
            u.0, x_dbl.0, a.0
        )));
    };
    if p < 2 * s + 1 {
        return Err(bad(&format!(
            "x_dbl rows of {p} cannot hold dt, B and C for {s} states"
        )));
    }
    let dims = CrossScanDims {
        batch: n,
        height: h,
        width: w,
        channels: c,
        d_state: s,
        dt_rank: p - 2 * s,
    };
    let y = cross_scan(&CrossScanInputs {
        dims,
        u: u.1,
        delta: delta.1,
        x_dbl: x_dbl.1,
        a: a.1,
        d: d.1,
        delta_bias: bias.1,
    })?;
    Ok((u.0.to_vec(), y))
}

/// Borrowed cross-scan arguments, all row-major channels-last.
#[derive(Debug, Clone, Copy)]
pub struct CrossScanInputs<'a> {
    /// Dimensions.
    pub dims: CrossScanDims,
    /// `u`, `(N, L, D)`.
    pub u: &'a [f32],
    /// Delta before bias and softplus, `(N, K, L, D)`.
    pub delta: &'a [f32],
    /// Per-position projections `(N, L, K, R + 2S)`: `[dt (R) | B (S) | C (S)]` per direction.
    pub x_dbl: &'a [f32],
    /// `A = -exp(A_logs)`, `(K D, S)`, direction-major as in the checkpoint.
    pub a: &'a [f32],
    /// Skip `D`, `(K D)`.
    pub d: &'a [f32],
    /// Delta bias, `(K D)`.
    pub delta_bias: &'a [f32],
}

impl CrossScanInputs<'_> {
    /// [`Self::validate`], and `dy` has one value per output, `(N, L, D)`.
    pub(crate) fn validate_backward(&self, dy: &[f32]) -> Result<(), ScanError> {
        self.validate()?;
        let d = &self.dims;
        let expected = d.batch * d.len() * d.channels;
        if dy.len() != expected {
            return Err(ScanError::Length {
                name: "dy",
                expected,
                found: dy.len(),
            });
        }
        Ok(())
    }

    /// Checks every buffer against `dims`.
    pub fn validate(&self) -> Result<(), ScanError> {
        let d = &self.dims;
        let (n, l, c, k) = (d.batch, d.len(), d.channels, DIRECTIONS);
        let m = ScanDims {
            batch: n,
            channels: k * c,
            len: l,
            d_state: d.d_state,
            groups: k,
        };
        m.check_len("u", self.u.len(), n * l * c)?;
        m.check_len("delta", self.delta.len(), n * k * l * c)?;
        m.check_len("x_dbl", self.x_dbl.len(), n * l * k * d.proj())?;
        m.check_len("A", self.a.len(), k * c * d.d_state)?;
        m.check_len("D", self.d.len(), k * c)?;
        m.check_len("delta_bias", self.delta_bias.len(), k * c)?;
        Ok(())
    }
}

/// Every `(batch, direction, step, position)` of a cross scan, in mamba-layout order.
fn steps(d: CrossScanDims) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let l = d.len();
    (0..d.batch).flat_map(move |bi| {
        (0..DIRECTIONS).flat_map(move |ki| (0..l).map(move |t| (bi, ki, t, position(ki, t, &d))))
    })
}

/// The official composition: materialise the four orders in mamba's layout, run
/// [`ReferenceScan`], map back and sum. Slow; the ground truth for [`cross_scan`].
pub fn cross_scan_reference(inp: &CrossScanInputs<'_>) -> Result<Vec<f32>, ScanError> {
    inp.validate()?;
    let m = MambaLayout::new(inp);
    let out = ReferenceScan.forward(&m.inputs(inp))?;
    Ok(m.merge(inp.dims, &out))
}

/// Gradients of a cross scan, in the layouts of [`CrossScanInputs`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrossScanGrads {
    /// d/du, `(N, L, D)`.
    pub u: Vec<f32>,
    /// d/d(delta) before bias and softplus, `(N, K, L, D)`.
    pub delta: Vec<f32>,
    /// d/d(x_dbl), `(N, L, K, R + 2S)`; the `dt` columns are zero (they reach the scan only
    /// through `delta`).
    pub x_dbl: Vec<f32>,
    /// d/dA, `(K D, S)`.
    pub a: Vec<f32>,
    /// d/dD, `(K D)`.
    pub d: Vec<f32>,
    /// d/d(delta_bias), `(K D)`.
    pub delta_bias: Vec<f32>,
}

/// [`crate::cross_scan_backward`] through mamba's layout: the four orders materialised, the
/// shared float64-accumulating host backward, mapped back. Slow; the ground truth for tests.
pub fn cross_scan_backward_reference(
    inp: &CrossScanInputs<'_>,
    dy: &[f32],
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
    let m = MambaLayout::new(inp);
    // dy is shared by the four directions (their outputs are summed).
    let mut dy_m = vec![0f32; n * k * c * l];
    for (bi, ki, t, pos) in steps(d) {
        for ch in 0..c {
            dy_m[(bi * k * c + ki * c + ch) * l + t] = dy[(bi * l + pos) * c + ch];
        }
    }
    let g = crate::scan::backward(&m.inputs(inp), &dy_m);
    let mut out = CrossScanGrads {
        u: vec![0.0; n * l * c],
        delta: vec![0.0; n * k * l * c],
        x_dbl: vec![0.0; n * l * k * p],
        a: g.a,
        d: g.d,
        delta_bias: g.delta_bias,
    };
    for (bi, ki, t, pos) in steps(d) {
        for ch in 0..c {
            let mi = (bi * k * c + ki * c + ch) * l + t;
            out.u[(bi * l + pos) * c + ch] += g.u[mi];
            out.delta[((bi * k + ki) * l + pos) * c + ch] = g.delta[mi];
        }
        let row = ((bi * l + pos) * k + ki) * p;
        for si in 0..s {
            let mi = ((bi * k + ki) * s + si) * l + t;
            out.x_dbl[row + r + si] = g.b[mi];
            out.x_dbl[row + r + s + si] = g.c[mi];
        }
    }
    Ok(out)
}

/// Owned mamba-layout copies of a cross scan's per-direction inputs.
struct MambaLayout {
    dims: ScanDims,
    u: Vec<f32>,
    delta: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl MambaLayout {
    fn inputs<'a>(&'a self, inp: &CrossScanInputs<'a>) -> ScanInputs<'a> {
        ScanInputs {
            dims: self.dims,
            u: &self.u,
            delta: &self.delta,
            a: inp.a,
            b: &self.b,
            c: &self.c,
            d: inp.d,
            delta_bias: inp.delta_bias,
            delta_softplus: true,
        }
    }

    /// Maps mamba-layout outputs `(N, K D, L)` back to row-major positions and sums them.
    fn merge(&self, d: CrossScanDims, out: &[f32]) -> Vec<f32> {
        let (n, l, c, k) = (d.batch, d.len(), d.channels, DIRECTIONS);
        let mut y = vec![0f32; n * l * c];
        for (bi, ki, t, pos) in steps(d) {
            for ch in 0..c {
                y[(bi * l + pos) * c + ch] += out[(bi * k * c + ki * c + ch) * l + t];
            }
        }
        y
    }

    fn new(inp: &CrossScanInputs<'_>) -> Self {
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
        let mut u = vec![0f32; n * k * c * l];
        let mut delta = vec![0f32; n * k * c * l];
        let mut b = vec![0f32; n * k * s * l];
        let mut cc = vec![0f32; n * k * s * l];
        for (bi, ki, t, pos) in steps(d) {
            for ch in 0..c {
                let m = (bi * k * c + ki * c + ch) * l + t;
                u[m] = inp.u[(bi * l + pos) * c + ch];
                delta[m] = inp.delta[((bi * k + ki) * l + pos) * c + ch];
            }
            let row = ((bi * l + pos) * k + ki) * p;
            for si in 0..s {
                let m = ((bi * k + ki) * s + si) * l + t;
                b[m] = inp.x_dbl[row + r + si];
                cc[m] = inp.x_dbl[row + r + s + si];
            }
        }
        MambaLayout {
            dims: ScanDims {
                batch: n,
                channels: k * c,
                len: l,
                d_state: s,
                groups: k,
            },
            u,
            delta,
            b,
            c: cc,
        }
    }
}

/// The fast cross scan: threads over (batch, 8-channel block), AVX2 (x86-64) or NEON (aarch64)
/// when the CPU has it.
/// Returns `y`, `(N, L, D)`, summed over the four directions.
pub fn cross_scan(inp: &CrossScanInputs<'_>) -> Result<Vec<f32>, ScanError> {
    cross_scan_impl(inp, has_simd())
}

pub(crate) fn cross_scan_impl(
    inp: &CrossScanInputs<'_>,
    simd: bool,
) -> Result<Vec<f32>, ScanError> {
    inp.validate()?;
    let d = inp.dims;
    let (n, l, c) = (d.batch, d.len(), d.channels);
    let mut y = vec![0f32; n * l * c];
    if y.is_empty() {
        return Ok(y);
    }
    // The SIMD kernel's exp2 is exact for decays <= 0, i.e. A <= 0 (A = -exp(A_logs) always is).
    let simd = simd && inp.a.iter().all(|&a| a <= 0.0);
    // Work items: runs of whole eight-channel blocks for the SIMD kernel (enough of them for
    // two per thread, so each reads the B / C rows once for all its blocks), the channels
    // past the last whole block for the portable one; eight-channel blocks without SIMD.
    let full = if simd { c / LANES } else { 0 };
    let per_item = full.div_ceil(rayon::current_num_threads()).max(1);
    let mut items: Vec<(usize, usize, usize, bool)> = Vec::new();
    for b in 0..n {
        for first in (0..full).step_by(per_item) {
            let blocks = per_item.min(full - first);
            items.push((b, first * LANES, blocks * LANES, true));
        }
        for c0 in (full * LANES..c).step_by(LANES) {
            items.push((b, c0, LANES.min(c - c0), false));
        }
    }
    // The SIMD items write their channels of `y` in place (no per-item buffer to allocate,
    // fill and copy); the portable ones into buffers copied afterwards.
    let out = OutRows {
        base: y.as_mut_ptr(),
        stride: c,
    };
    let parts: Vec<Option<Vec<f32>>> = items
        .par_iter()
        .map(|&(b, c0, width, fast)| {
            if fast {
                // SAFETY: the CPU has the SIMD instruction set (checked by the caller); the
                // item is whole eight-channel blocks, so every eight-float load stays in bounds;
                // the items' (batch, channel range) regions of `y` are disjoint, and `y` is not
                // touched otherwise until they are all done.
                unsafe { cross_run_fast(inp, b, c0, width, out.offset((b * l) * c + c0)) };
                None
            } else {
                let mut part = vec![0f32; l * width];
                block_portable(inp, b, c0, width, &mut part);
                Some(part)
            }
        })
        .collect();
    for (&(b, c0, width, _), part) in items.iter().zip(parts) {
        let Some(part) = part else { continue };
        for pos in 0..l {
            let o = (b * l + pos) * c + c0;
            y[o..o + width].copy_from_slice(&part[pos * width..(pos + 1) * width]);
        }
    }
    Ok(y)
}

/// Where a SIMD work item writes: `base` is its first channel at position 0; position `pos`'s
/// channels start `pos * stride` floats further. A raw pointer, because the items' channel
/// ranges interleave in `y`.
#[derive(Clone, Copy)]
struct OutRows {
    base: *mut f32,
    stride: usize,
}

// SAFETY: every work item writes only its own (batch, channel range) region.
unsafe impl Send for OutRows {}
unsafe impl Sync for OutRows {}

impl OutRows {
    /// The same rows `by` floats further.
    fn offset(self, by: usize) -> Self {
        Self {
            base: self.base.wrapping_add(by),
            stride: self.stride,
        }
    }
}

/// Portable kernel: one channel at a time, channels `c0..c0 + lanes`; accumulates into
/// `part[pos * lanes + j]`.
fn block_portable(inp: &CrossScanInputs<'_>, b: usize, c0: usize, lanes: usize, part: &mut [f32]) {
    let d = inp.dims;
    let (l, c, s, r, p, k) = (
        d.len(),
        d.channels,
        d.d_state,
        d.dt_rank,
        d.proj(),
        DIRECTIONS,
    );
    let mut h = vec![0f32; s];
    for ki in 0..k {
        for j in 0..lanes {
            let ch = ki * c + c0 + j;
            let arow: Vec<f32> = inp.a[ch * s..(ch + 1) * s]
                .iter()
                .map(|v| v * std::f32::consts::LOG2_E)
                .collect();
            h.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..l {
                let pos = position(ki, t, &d);
                let u = inp.u[(b * l + pos) * c + c0 + j];
                let raw = inp.delta[((b * k + ki) * l + pos) * c + c0 + j] + inp.delta_bias[ch];
                let dt = softplus(raw);
                let row = &inp.x_dbl[((b * l + pos) * k + ki) * p..][..p];
                let mut y = inp.d[ch] * u;
                for si in 0..s {
                    h[si] = fast_exp2(dt * arow[si]) * h[si] + dt * u * row[r + si];
                    y += h[si] * row[r + s + si];
                }
                part[pos * lanes + j] += y;
            }
        }
    }
}

simd_entry! {
    /// [`cross_run_simd`] for the CPU's instruction set (callers check [`has_simd`]).
    unsafe fn cross_run_fast(
        inp: &CrossScanInputs<'_>,
        b: usize,
        c0: usize,
        width: usize,
        out: OutRows,
    ) => cross_run_simd
}

/// [`block_portable`] on eight-lane SIMD vectors for a run of whole eight-channel blocks:
/// one batch element, channels `c0..c0 + width`, all four directions; writes the sum of the
/// directions into `out` (the first direction stores, the others add). Needs `A <= 0` (the
/// caller checks).
///
/// Each direction walks its order in tiles ([`crate::tile`]). Per tile the B / C rows are
/// copied once for every block of the run (each block would otherwise stream them from L2 or
/// L3 again), then block by block the shared passes read the block's `u` and delta in place at
/// the tile's positions (the column-major walks stride by a whole row: the next tile's lines
/// are prefetched into L2 while this one computes; copying them into the tile first cost about
/// 8 % more at the paper's stage 1), and the outputs go to their positions of `y`. The states
/// of every block of the run (`width / 8 * S` vectors) stay in L1 between tiles.
#[inline(always)]
unsafe fn cross_run_simd<S: F32x8>(
    inp: &CrossScanInputs<'_>,
    b: usize,
    c0: usize,
    width: usize,
    out: OutRows,
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
    let blocks = width / LANES;
    // u and delta are read in place (below); the tile keeps B / C and the per-block passes.
    let mut tile = Tile::new(s, 0);
    let mut pos_buf = [0usize; TILE];
    let u_base = &inp.u[b * l * c..(b + 1) * l * c];
    let x_base = &inp.x_dbl[b * l * k * p..(b + 1) * l * k * p];
    for ki in 0..k {
        // Per block: A * log2 e, the states, the skip and bias vectors.
        let a2: Vec<_> = (0..blocks)
            .map(|bi| {
                let cb = c0 + bi * LANES;
                scaled_a::<S>(s, |j, si| inp.a[(ki * c + cb + j) * s + si])
            })
            .collect();
        let mut h: Vec<_> = a2
            .iter()
            .map(|a| vec![[S::zero(); GROUP]; a.vecs.len()])
            .collect();
        let dskip: Vec<S> = (0..blocks)
            .map(|bi| S::load(&inp.d[ki * c + c0 + bi * LANES..]))
            .collect();
        let bias: Vec<S> = (0..blocks)
            .map(|bi| S::load(&inp.delta_bias[ki * c + c0 + bi * LANES..]))
            .collect();
        let d_base = &inp.delta[(b * k + ki) * l * c..(b * k + ki + 1) * l * c];
        for t0 in (0..l).step_by(TILE) {
            let n = TILE.min(l - t0);
            // The tile's positions, and its B / C rows gathered once for the whole run.
            for (i, slot) in pos_buf[..n].iter_mut().enumerate() {
                let pos = position(ki, t0 + i, &d);
                *slot = pos;
                let row = (pos * k + ki) * p + r;
                tile.set_bc::<S>(i, &x_base[row..row + s], &x_base[row + s..row + 2 * s]);
            }
            // The next tile's inputs and output rows into L2 while this one computes (the
            // column-major walks stride by a whole row: no hardware prefetcher follows them),
            // a share before each block so the misses in flight stay few.
            let next = t0 + TILE..l.min(t0 + 2 * TILE);
            let share = next.len().div_ceil(blocks);
            for bi in 0..blocks {
                for t in next.clone().skip(bi * share).take(share) {
                    let pos = position(ki, t, &d);
                    let row = (pos * k + ki) * p + r;
                    for q in (0..2 * s).step_by(16).chain([2 * s - 1]) {
                        prefetch_l2(x_base.as_ptr().wrapping_add(row + q));
                    }
                    for q in (0..width).step_by(16) {
                        prefetch_l2(u_base.as_ptr().wrapping_add(pos * c + c0 + q));
                        prefetch_l2(d_base.as_ptr().wrapping_add(pos * c + c0 + q));
                        prefetch_l2(out.base.wrapping_add(pos * out.stride + q));
                    }
                }
                let at = c0 + bi * LANES;
                tile.prepare_from(
                    n,
                    [u_base.as_ptr().add(at), d_base.as_ptr().add(at)],
                    |i| pos_buf[i] * c,
                    bias[bi],
                    dskip[bi],
                    true,
                );
                tile.recur(n, &mut h[bi], &a2[bi]);
                for (i, &pos) in pos_buf[..n].iter().enumerate() {
                    // SAFETY: inside this item's region of `y` (see `OutRows`).
                    let o = std::slice::from_raw_parts_mut(
                        out.base.add(pos * out.stride + bi * LANES),
                        LANES,
                    );
                    let v = S::load(&tile.y[i * LANES..]);
                    if ki == 0 {
                        v.store(o);
                    } else {
                        S::load(o).add(v).store(o);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(dims: CrossScanDims, seed: usize) -> [Vec<f32>; 6] {
        let f = |i: usize, m: usize| (((i + seed) * m) % 1009) as f32 / 504.5 - 1.0;
        let (n, l, c, k, s) = (
            dims.batch,
            dims.len(),
            dims.channels,
            DIRECTIONS,
            dims.d_state,
        );
        [
            (0..n * l * c).map(|i| f(i, 7)).collect(),
            (0..n * k * l * c).map(|i| 3.0 * f(i, 11) - 1.0).collect(),
            (0..n * l * k * dims.proj()).map(|i| f(i, 13)).collect(),
            (0..k * c * s).map(|i| -(0.5 + (i % s) as f32)).collect(),
            (0..k * c).map(|i| f(i, 17)).collect(),
            (0..k * c).map(|i| 0.3 * f(i, 19)).collect(),
        ]
    }

    /// Largest difference from [`cross_scan_reference`] over its largest magnitude (infinite
    /// when any output is not finite).
    fn error_vs_reference(inp: &CrossScanInputs<'_>, simd: bool) -> f32 {
        let want = cross_scan_reference(inp).unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let got = cross_scan_impl(inp, simd).unwrap();
        if !got.iter().all(|v| v.is_finite()) {
            return f32::INFINITY;
        }
        got.iter()
            .zip(&want)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// The fast kernel's paths: runs of several blocks over several tiles (L > 2 tiles, not
    /// square), a remainder past the last whole block, padded states, the clamped `exp2`
    /// (huge decays), and the portable fallback for a positive A.
    #[test]
    fn fast_paths_match_the_official_composition() {
        let dims = CrossScanDims {
            batch: 2,
            height: 12,
            width: 11,
            channels: 44,
            d_state: 6,
            dt_rank: 3,
        };
        for (case_name, a_scale, a_shift) in [
            ("typical", 1.0, 0.0),
            ("huge decays", 300.0, 0.0),
            ("positive A", 1.0, 0.55),
        ] {
            let [u, delta, x_dbl, a, d, bias] = case(dims, 5);
            let a: Vec<f32> = a.iter().map(|v| v * a_scale + a_shift).collect();
            let inp = CrossScanInputs {
                dims,
                u: &u,
                delta: &delta,
                x_dbl: &x_dbl,
                a: &a,
                d: &d,
                delta_bias: &bias,
            };
            let e = error_vs_reference(&inp, true);
            assert!(e <= 1e-5, "{case_name}: relative error {e}");
        }
    }

    #[test]
    fn matches_the_official_composition() {
        for (dims, seed) in [
            (
                CrossScanDims {
                    batch: 2,
                    height: 4,
                    width: 6,
                    channels: 16,
                    d_state: 5,
                    dt_rank: 2,
                },
                1,
            ),
            (
                CrossScanDims {
                    batch: 1,
                    height: 8,
                    width: 8,
                    channels: 20,
                    d_state: 16,
                    dt_rank: 3,
                },
                2,
            ),
            (
                CrossScanDims {
                    batch: 1,
                    height: 3,
                    width: 1,
                    channels: 8,
                    d_state: 1,
                    dt_rank: 1,
                },
                3,
            ),
        ] {
            let [u, delta, x_dbl, a, d, bias] = case(dims, seed);
            let inp = CrossScanInputs {
                dims,
                u: &u,
                delta: &delta,
                x_dbl: &x_dbl,
                a: &a,
                d: &d,
                delta_bias: &bias,
            };
            for simd in [false, true] {
                let e = error_vs_reference(&inp, simd);
                assert!(e <= 1e-5, "{dims:?} simd={simd}: relative error {e}");
            }
        }
    }

    /// The reference backward (ground truth of the fast one, see the `cross_bwd` tests)
    /// against finite differences of the reference forward.
    #[test]
    fn backward_matches_finite_differences() {
        let dims = CrossScanDims {
            batch: 1,
            height: 3,
            width: 2,
            channels: 8,
            d_state: 2,
            dt_rank: 1,
        };
        let [u, delta, x_dbl, a, d, bias] = case(dims, 5);
        let w: Vec<f32> = (0..u.len())
            .map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let loss = |u: &[f32], delta: &[f32], x_dbl: &[f32]| -> f64 {
            let inp = CrossScanInputs {
                dims,
                u,
                delta,
                x_dbl,
                a: &a,
                d: &d,
                delta_bias: &bias,
            };
            let y = cross_scan_reference(&inp).unwrap();
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let inp = CrossScanInputs {
            dims,
            u: &u,
            delta: &delta,
            x_dbl: &x_dbl,
            a: &a,
            d: &d,
            delta_bias: &bias,
        };
        let g = cross_scan_backward_reference(&inp, &w).unwrap();
        let h = 1e-2f32;
        let fd = |which: usize, i: usize| {
            let mut v = [u.clone(), delta.clone(), x_dbl.clone()];
            v[which][i] += h;
            let plus = loss(&v[0], &v[1], &v[2]);
            v[which][i] -= 2.0 * h;
            let minus = loss(&v[0], &v[1], &v[2]);
            (plus - minus) / (2.0 * h as f64)
        };
        for (which, grad) in [(0, &g.u), (1, &g.delta), (2, &g.x_dbl)] {
            for (i, an) in grad.iter().enumerate() {
                let num = fd(which, i);
                assert!(
                    (num - *an as f64).abs() <= 2e-3 * (1.0 + num.abs()),
                    "input {which}[{i}]: {an} vs {num}"
                );
            }
        }
    }

    #[test]
    fn bad_lengths_are_reported() {
        let dims = CrossScanDims {
            batch: 1,
            height: 2,
            width: 2,
            channels: 8,
            d_state: 2,
            dt_rank: 1,
        };
        let [u, delta, x_dbl, a, d, bias] = case(dims, 0);
        let inp = CrossScanInputs {
            dims,
            u: &u[1..],
            delta: &delta,
            x_dbl: &x_dbl,
            a: &a,
            d: &d,
            delta_bias: &bias,
        };
        assert!(cross_scan(&inp).unwrap_err().to_string().contains("`u`"));
    }
}
