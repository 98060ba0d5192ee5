//! Fast float32 CPU kernel: eight channels per SIMD lane group, states in registers,
//! threads over (batch, channel block), AVX2+FMA (x86-64) or NEON (aarch64) selected at run time.

use rayon::prelude::*;

use crate::dims::{ScanError, ScanInputs};
use crate::math::simd::{simd_entry, F32x8};
use crate::math::{fast_exp, has_simd, LANES};
use crate::scan::SelectiveScan;
use crate::tile::{scaled_a, Tile, GROUP, TILE};

type V = [f32; LANES];

/// Vectorised, multi-threaded float32 scan; matches [`crate::ReferenceScan`] to ~1e-6 relative.
/// The SIMD kernel is [`crate::tile`]'s, as in [`crate::cross_scan`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuScan;

/// A run of consecutive channels inside one direction group.
#[derive(Clone, Copy)]
struct Block {
    batch: usize,
    group: usize,
    ch0: usize,
    lanes: usize,
}

impl SelectiveScan for CpuScan {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn forward(&self, inp: &ScanInputs<'_>) -> Result<Vec<f32>, ScanError> {
        forward_impl(inp, has_simd())
    }
}

/// The forward pass; `simd` selects the SIMD kernel (only when the CPU has it).
fn forward_impl(inp: &ScanInputs<'_>, simd: bool) -> Result<Vec<f32>, ScanError> {
    {
        inp.validate()?;
        let d = inp.dims;
        let mut y = vec![0f32; d.x_len()];
        if d.x_len() == 0 {
            return Ok(y);
        }
        let cpg = d.channels_per_group();
        let mut blocks = Vec::new();
        for batch in 0..d.batch {
            for group in 0..d.groups {
                let mut ch0 = group * cpg;
                while ch0 < (group + 1) * cpg {
                    let lanes = LANES.min((group + 1) * cpg - ch0);
                    blocks.push(Block {
                        batch,
                        group,
                        ch0,
                        lanes,
                    });
                    ch0 += lanes;
                }
            }
        }
        // Blocks are in memory order, so the output splits into consecutive slices.
        let mut work = Vec::with_capacity(blocks.len());
        let mut rest: &mut [f32] = &mut y;
        for blk in blocks {
            let (head, tail) = rest.split_at_mut(blk.lanes * d.len);
            work.push((blk, head));
            rest = tail;
        }
        // B and C as (batch, group, L, N): one contiguous row of N states per step.
        let bt = to_step_major(inp.b, d.batch * d.groups, d.d_state, d.len);
        let ct = to_step_major(inp.c, d.batch * d.groups, d.d_state, d.len);
        // The SIMD kernel's exp2 is exact for decays <= 0, i.e. A <= 0 (always, for a model).
        let simd = simd && has_simd() && inp.a.iter().all(|&a| a <= 0.0);
        work.into_par_iter().for_each(|(blk, out)| {
            if simd {
                // SAFETY: the CPU has the SIMD instruction set (checked at run time above).
                unsafe { scan_block_fast(inp, &bt, &ct, blk, out) };
            } else {
                scan_block(inp, &bt, &ct, blk, out)
            }
        });
        Ok(y)
    }
}

/// `(rows, n, len)` -> `(rows, len, n)`.
fn to_step_major(x: &[f32], rows: usize, n: usize, len: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(n * len.max(1))
        .zip(x.par_chunks(n * len.max(1)))
        .take(rows)
        .for_each(|(o, src)| {
            for s in 0..n {
                for l in 0..len {
                    o[l * n + s] = src[s * len + l];
                }
            }
        });
    out
}

/// Portable kernel (any target): the same arithmetic as the SIMD one, lane by lane.
fn scan_block(inp: &ScanInputs<'_>, bt: &[f32], ct: &[f32], blk: Block, out: &mut [f32]) {
    let d = inp.dims;
    let (len, n_st, c) = (d.len, d.d_state, d.channels);
    let bc_off = (blk.batch * d.groups + blk.group) * n_st * len;
    let x_off = (blk.batch * c + blk.ch0) * len;
    // Per-lane constants; padding lanes get zeros and are never written.
    let mut a = vec![[0f32; LANES]; n_st];
    let mut dskip: V = [0.0; LANES];
    for j in 0..blk.lanes {
        let ch = blk.ch0 + j;
        for (n, an) in a.iter_mut().enumerate() {
            an[j] = inp.a[ch * n_st + n];
        }
        dskip[j] = inp.d[ch];
    }
    let mut h = vec![[0f32; LANES]; n_st];
    for l in 0..len {
        let mut dt: V = [0.0; LANES];
        let mut u: V = [0.0; LANES];
        for j in 0..blk.lanes {
            let i = x_off + j * len + l;
            u[j] = inp.u[i];
            dt[j] = inp.dt(inp.delta[i], blk.ch0 + j);
        }
        let mut du: V = [0.0; LANES];
        let mut y: V = [0.0; LANES];
        for j in 0..LANES {
            du[j] = dt[j] * u[j];
            y[j] = dskip[j] * u[j];
        }
        let brow = &bt[bc_off + l * n_st..bc_off + (l + 1) * n_st];
        let crow = &ct[bc_off + l * n_st..bc_off + (l + 1) * n_st];
        for n in 0..n_st {
            let (bn, cn) = (brow[n], crow[n]);
            let (hn, an) = (&mut h[n], &a[n]);
            for j in 0..LANES {
                let decay = fast_exp(dt[j] * an[j]);
                hn[j] = decay * hn[j] + du[j] * bn;
                y[j] += hn[j] * cn;
            }
        }
        for j in 0..blk.lanes {
            out[j * len + l] = y[j];
        }
    }
}

simd_entry! {
    /// [`scan_block_simd`] for the CPU's instruction set (callers check [`has_simd`]).
    unsafe fn scan_block_fast(
        inp: &ScanInputs<'_>,
        bt: &[f32],
        ct: &[f32],
        blk: Block,
        out: &mut [f32],
    ) => scan_block_simd
}

/// [`scan_block`] on eight-lane SIMD vectors: eight channels in one vector, tile by tile
/// ([`crate::tile`]): the gather pass transposes the eight channels' rows of `u` and delta
/// for the tile into position-major buffers and copies B / C rows, the shared passes compute,
/// and the outputs are transposed back. Needs `A <= 0` (the caller checks).
#[inline(always)]
unsafe fn scan_block_simd<S: F32x8>(
    inp: &ScanInputs<'_>,
    bt: &[f32],
    ct: &[f32],
    blk: Block,
    out: &mut [f32],
) {
    let d = inp.dims;
    let (len, n_st, c) = (d.len, d.d_state, d.channels);
    let bc_off = (blk.batch * d.groups + blk.group) * n_st * len;
    let x_off = (blk.batch * c + blk.ch0) * len;
    let a2 = scaled_a::<S>(n_st, |j, n| {
        if j < blk.lanes {
            inp.a[(blk.ch0 + j) * n_st + n]
        } else {
            0.0
        }
    });
    let mut h = vec![[S::zero(); GROUP]; a2.vecs.len()];
    let (mut dskip, mut bias) = ([0f32; LANES], [0f32; LANES]);
    for j in 0..blk.lanes {
        dskip[j] = inp.d[blk.ch0 + j];
        bias[j] = inp.delta_bias[blk.ch0 + j];
    }
    let (dskip, bias) = (S::load(&dskip), S::load(&bias));
    let mut tile = Tile::new(n_st, LANES);
    for t0 in (0..len).step_by(TILE) {
        let n = TILE.min(len - t0);
        for j in 0..blk.lanes {
            let row = x_off + j * len + t0;
            for (i, (&u, &dl)) in inp.u[row..row + n]
                .iter()
                .zip(&inp.delta[row..row + n])
                .enumerate()
            {
                tile.src_u[i * LANES + j] = u;
                tile.src_d[i * LANES + j] = dl;
            }
        }
        for i in 0..n {
            let at = bc_off + (t0 + i) * n_st;
            tile.set_bc::<S>(i, &bt[at..at + n_st], &ct[at..at + n_st]);
        }
        tile.prepare(n, 0, bias, dskip, inp.delta_softplus);
        tile.recur(n, &mut h, &a2);
        for j in 0..blk.lanes {
            let row = &mut out[j * len + t0..j * len + t0 + n];
            for (i, o) in row.iter_mut().enumerate() {
                *o = tile.y[i * LANES + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::forward_impl;
    use crate::{ReferenceScan, ScanDims, ScanInputs, SelectiveScan};

    /// The portable kernel is what non-x86 targets run: check it against the reference too,
    /// and against the SIMD kernel where the CPU has one.
    #[test]
    fn portable_and_simd_kernels_agree_with_reference() {
        let dims = ScanDims {
            batch: 2,
            channels: 44,
            len: 300,
            d_state: 16,
            groups: 4,
        };
        let f = |i: usize, k: usize| ((i * k) % 1013) as f32 / 506.0 - 1.0;
        let u: Vec<f32> = (0..dims.x_len()).map(|i| f(i, 7)).collect();
        let delta: Vec<f32> = (0..dims.x_len()).map(|i| 4.0 * f(i, 13) - 1.0).collect();
        let a: Vec<f32> = (0..44 * 16).map(|i| -(1.0 + (i % 16) as f32)).collect();
        let b: Vec<f32> = (0..dims.bc_len()).map(|i| f(i, 17)).collect();
        let c: Vec<f32> = (0..dims.bc_len()).map(|i| f(i, 19)).collect();
        let dd: Vec<f32> = (0..44).map(|i| f(i, 23)).collect();
        let bias: Vec<f32> = (0..44).map(|i| 0.3 * f(i, 29)).collect();
        let inp = ScanInputs {
            dims,
            u: &u,
            delta: &delta,
            a: &a,
            b: &b,
            c: &c,
            d: &dd,
            delta_bias: &bias,
            delta_softplus: true,
        };
        let want = ReferenceScan.forward(&inp).unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for simd in [false, true] {
            let got = forward_impl(&inp, simd).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
                / scale;
            assert!(err <= 1e-5, "simd={simd}: relative error {err}");
        }
    }
}
