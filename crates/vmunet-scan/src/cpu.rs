//! Fast float32 CPU kernel: eight channels per SIMD lane group, states in registers,
//! threads over (batch, channel block), AVX2+FMA selected at run time on x86-64.

use rayon::prelude::*;

use crate::{ScanError, ScanInputs, SelectiveScan};

/// Channels processed together (one AVX register of f32).
const LANES: usize = 8;
type V = [f32; LANES];

/// Vectorised, multi-threaded float32 scan; matches [`crate::ReferenceScan`] to ~1e-6 relative.
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
        let avx2 = has_avx2_fma();
        work.into_par_iter().for_each(|(blk, out)| {
            if avx2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time above).
                unsafe {
                    scan_block_avx2(inp, blk, out)
                }
            } else {
                scan_block(inp, blk, out)
            }
        });
        Ok(y)
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_block_avx2(inp: &ScanInputs<'_>, blk: Block, out: &mut [f32]) {
    scan_block(inp, blk, out)
}

#[inline(always)]
fn scan_block(inp: &ScanInputs<'_>, blk: Block, out: &mut [f32]) {
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
        for n in 0..n_st {
            let bn = inp.b[bc_off + n * len + l];
            let cn = inp.c[bc_off + n * len + l];
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

/// `exp` for float32 without branches (Cephes `expf` polynomial, ~1 ulp), so loops vectorise.
/// Inputs below -87.3 return ~1e-38 rather than 0.
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let x = x.clamp(-87.336_54, 88.376_26);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::fast_exp;

    #[test]
    fn fast_exp_matches_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = fast_exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(fast_exp(-1e4) < 1e-37);
        assert!(fast_exp(-1e4) >= 0.0);
        assert_eq!(fast_exp(0.0), 1.0);
    }
}
