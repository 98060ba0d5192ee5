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
        forward_impl(inp, has_avx2_fma())
    }
}

/// The forward pass; `simd` selects the AVX2 kernel (only when the CPU has it).
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
        let avx2 = simd && has_avx2_fma();
        work.into_par_iter().for_each(|(blk, out)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time above).
                unsafe { avx2::scan_block(inp, &bt, &ct, blk, out) };
                return;
            }
            let _ = avx2;
            scan_block(inp, &bt, &ct, blk, out)
        });
        Ok(y)
    }
}

pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

/// Portable kernel (any target): the same arithmetic as the AVX2 one, lane by lane.
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

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{Block, LANES};
    use crate::ScanInputs;

    /// Eight channels in one `__m256`, the N states in registers/L1, FMA throughout.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scan_block(
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
        let mut a_lanes = vec![[0f32; LANES]; n_st];
        let mut dskip = [0f32; LANES];
        for j in 0..blk.lanes {
            let ch = blk.ch0 + j;
            for (n, an) in a_lanes.iter_mut().enumerate() {
                an[j] = inp.a[ch * n_st + n];
            }
            dskip[j] = inp.d[ch];
        }
        let a: Vec<__m256> = a_lanes
            .iter()
            .map(|v| _mm256_loadu_ps(v.as_ptr()))
            .collect();
        let dskip = _mm256_loadu_ps(dskip.as_ptr());
        let mut bias = [0f32; LANES];
        for (j, b) in bias.iter_mut().enumerate().take(blk.lanes) {
            *b = inp.delta_bias[blk.ch0 + j];
        }
        let bias = _mm256_loadu_ps(bias.as_ptr());
        let mut h = vec![_mm256_setzero_ps(); n_st];
        let mut dt_l = [0f32; LANES];
        let mut u_l = [0f32; LANES];
        let mut y_l = [0f32; LANES];
        for l in 0..len {
            for j in 0..blk.lanes {
                let i = x_off + j * len + l;
                u_l[j] = inp.u[i];
                dt_l[j] = inp.delta[i];
            }
            let raw = _mm256_add_ps(_mm256_loadu_ps(dt_l.as_ptr()), bias);
            let dt = if inp.delta_softplus {
                softplus256(raw)
            } else {
                raw
            };
            let u = _mm256_loadu_ps(u_l.as_ptr());
            let du = _mm256_mul_ps(dt, u);
            let mut y = _mm256_mul_ps(dskip, u);
            let brow = &bt[bc_off + l * n_st..bc_off + (l + 1) * n_st];
            let crow = &ct[bc_off + l * n_st..bc_off + (l + 1) * n_st];
            for n in 0..n_st {
                let decay = exp256(_mm256_mul_ps(dt, a[n]));
                let hn = _mm256_fmadd_ps(decay, h[n], _mm256_mul_ps(du, _mm256_set1_ps(brow[n])));
                h[n] = hn;
                y = _mm256_fmadd_ps(hn, _mm256_set1_ps(crow[n]), y);
            }
            _mm256_storeu_ps(y_l.as_mut_ptr(), y);
            for j in 0..blk.lanes {
                out[j * len + l] = y_l[j];
            }
        }
    }

    /// Cross scan, one batch and eight channels `c0..c0 + 8`, all four directions;
    /// accumulates into `part[pos * 8 + j]`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn cross_block(
        inp: &crate::cross::CrossScanInputs<'_>,
        b: usize,
        c0: usize,
        part: &mut [f32],
    ) {
        let d = inp.dims;
        let (l, c, s, r, p, k) = (d.len(), d.channels, d.d_state, d.dt_rank, d.proj(), 4);
        let col: Vec<usize> = (0..l)
            .map(|t| (t % d.height) * d.width + t / d.height)
            .collect();
        let mut h = vec![_mm256_setzero_ps(); s];
        let mut a = vec![_mm256_setzero_ps(); s];
        let mut lane = [0f32; LANES];
        for ki in 0..k {
            for (si, av) in a.iter_mut().enumerate() {
                for (j, v) in lane.iter_mut().enumerate() {
                    *v = inp.a[(ki * c + c0 + j) * s + si];
                }
                *av = _mm256_loadu_ps(lane.as_ptr());
            }
            let dskip = _mm256_loadu_ps(inp.d[ki * c + c0..].as_ptr());
            let bias = _mm256_loadu_ps(inp.delta_bias[ki * c + c0..].as_ptr());
            h.iter_mut().for_each(|v| *v = _mm256_setzero_ps());
            let u_base = &inp.u[b * l * c..(b + 1) * l * c];
            let d_base = &inp.delta[(b * k + ki) * l * c..(b * k + ki + 1) * l * c];
            let x_base = &inp.x_dbl[b * l * k * p..(b + 1) * l * k * p];
            for t in 0..l {
                let tt = if ki >= 2 { l - 1 - t } else { t };
                let pos = if ki % 2 == 1 { col[tt] } else { tt };
                let u = _mm256_loadu_ps(u_base[pos * c + c0..pos * c + c0 + LANES].as_ptr());
                let raw = _mm256_add_ps(
                    _mm256_loadu_ps(d_base[pos * c + c0..pos * c + c0 + LANES].as_ptr()),
                    bias,
                );
                let dt = softplus256(raw);
                let du = _mm256_mul_ps(dt, u);
                let mut y = _mm256_mul_ps(dskip, u);
                let row = &x_base[(pos * k + ki) * p + r..(pos * k + ki) * p + r + 2 * s];
                for si in 0..s {
                    let decay = exp256(_mm256_mul_ps(dt, a[si]));
                    let hn =
                        _mm256_fmadd_ps(decay, h[si], _mm256_mul_ps(du, _mm256_set1_ps(row[si])));
                    h[si] = hn;
                    y = _mm256_fmadd_ps(hn, _mm256_set1_ps(row[s + si]), y);
                }
                let o = &mut part[pos * LANES..pos * LANES + LANES];
                let acc = _mm256_add_ps(_mm256_loadu_ps(o.as_ptr()), y);
                _mm256_storeu_ps(o.as_mut_ptr(), acc);
            }
        }
    }

    /// `softplus(x) = max(x, 0) + log1p(exp(-|x|))`; equals PyTorch's (threshold 20) to ~1 ulp.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn softplus256(x: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let neg_abs = _mm256_or_ps(x, sign);
        let z = exp256(neg_abs); // (0, 1]
        let one = _mm256_set1_ps(1.0);
        let w = _mm256_add_ps(one, z); // [1, 2], so w - 1 is exact
        let wm1 = _mm256_sub_ps(w, one);
        // log(w) with the Cephes logf polynomial: w = 2^e (1 + m), m in [-0.29, 0.42].
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(w, _mm256_set1_ps(std::f32::consts::SQRT_2));
        let m = _mm256_blendv_ps(wm1, _mm256_fmsub_ps(w, _mm256_set1_ps(0.5), one), big);
        let e = _mm256_and_ps(big, one);
        let mm = _mm256_mul_ps(m, m);
        let mut p = _mm256_set1_ps(7.037_683_6e-2);
        for k in super::LOGF_POLY {
            p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(k));
        }
        let mut y = _mm256_mul_ps(_mm256_mul_ps(p, m), mm);
        y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.121_944_4e-4), y);
        y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5), mm, y);
        let logw = _mm256_fmadd_ps(e, _mm256_set1_ps(0.693_359_4), _mm256_add_ps(m, y));
        // log1p(z) = log(w) * z / (w - 1), or z where w rounds to 1.
        let tiny = _mm256_cmp_ps::<_CMP_EQ_OQ>(wm1, _mm256_setzero_ps());
        let safe = _mm256_blendv_ps(wm1, one, tiny);
        let l1p = _mm256_blendv_ps(_mm256_div_ps(_mm256_mul_ps(logw, z), safe), z, tiny);
        _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), l1p)
    }

    /// Eight-lane version of [`super::fast_exp`] (same constants, same results).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp256(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.336_54)),
            _mm256_set1_ps(88.376_26),
        );
        let magic = _mm256_set1_ps(12_582_912.0);
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), magic);
        let n = _mm256_sub_ps(t, magic);
        let ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for k in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(k));
        }
        let e = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(ni, _mm256_set1_epi32(127)));
        _mm256_mul_ps(e, _mm256_castsi256_ps(scale))
    }
}

/// Cephes `logf` polynomial coefficients after the leading 7.037_683_6e-2 (Horner order), shared
/// by the scalar and AVX2 softplus.
const LOGF_POLY: [f32; 8] = [
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// `softplus` for float32 without branches (so loops vectorise): `max(x, 0) + log1p(exp(-|x|))`
/// with the Cephes `logf` polynomial; within ~2 ulp of PyTorch's (threshold 20).
#[inline(always)]
pub(crate) fn fast_softplus(x: f32) -> f32 {
    let z = fast_exp(-x.abs()); // (0, 1]
    let w = 1.0 + z; // [1, 2]: w - 1 is exact
    let wm1 = w - 1.0;
    let big = w > std::f32::consts::SQRT_2;
    let m = if big { w * 0.5 - 1.0 } else { wm1 };
    let e = if big { 1.0 } else { 0.0 };
    let mm = m * m;
    let mut p = 7.037_683_6e-2f32;
    for k in LOGF_POLY {
        p = p * m + k;
    }
    let mut y = p * m * mm;
    y += e * -2.121_944_4e-4;
    y -= 0.5 * mm;
    let logw = e * 0.693_359_4 + (m + y);
    // log1p(z) = log(w) * z / (w - 1), or z where w rounds to 1.
    let l1p = if wm1 == 0.0 { z } else { logw * z / wm1 };
    x.max(0.0) + l1p
}

/// The logistic function `1 / (1 + exp(-x))` (the derivative of softplus), branch-free.
#[inline(always)]
pub(crate) fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
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
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::{fast_exp, forward_impl};
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

    #[test]
    fn fast_softplus_and_sigmoid_match_std() {
        let (mut worst_sp, mut worst_sig) = (0f64, 0f64);
        let mut x = -60.0f32;
        while x < 60.0 {
            let xd = x as f64;
            let want = if xd > 20.0 { xd } else { xd.exp().ln_1p() };
            let got = super::fast_softplus(x) as f64;
            worst_sp = worst_sp.max(((got - want) / want).abs());
            let want = 1.0 / (1.0 + (-xd).exp());
            worst_sig = worst_sig.max(((super::fast_sigmoid(x) as f64 - want) / want).abs());
            x += 0.0113;
        }
        assert!(worst_sp < 5e-7, "softplus: worst relative error {worst_sp}");
        assert!(
            worst_sig < 5e-7,
            "sigmoid: worst relative error {worst_sig}"
        );
        assert_eq!(super::fast_softplus(1e4), 1e4);
        assert!(super::fast_sigmoid(-1e4) >= 0.0 && super::fast_sigmoid(1e4) == 1.0);
    }
}
