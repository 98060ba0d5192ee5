//! Shared float numerics of the host kernels: PyTorch's `softplus`, the branch-free
//! `exp` / `softplus` / `sigmoid` the eight-lane loops use, and their AVX2 versions ([`avx2`]).
//! A leaf: depends on no other module of the crate.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

/// Channels processed together by the fast kernels (one AVX register of f32).
pub(crate) const LANES: usize = 8;

/// True when the CPU has AVX2 and FMA, so the intrinsics kernels may run.
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
    use super::{fast_exp, fast_sigmoid, fast_softplus};

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
            let got = fast_softplus(x) as f64;
            worst_sp = worst_sp.max(((got - want) / want).abs());
            let want = 1.0 / (1.0 + (-xd).exp());
            worst_sig = worst_sig.max(((fast_sigmoid(x) as f64 - want) / want).abs());
            x += 0.0113;
        }
        assert!(worst_sp < 5e-7, "softplus: worst relative error {worst_sp}");
        assert!(
            worst_sig < 5e-7,
            "sigmoid: worst relative error {worst_sig}"
        );
        assert_eq!(fast_softplus(1e4), 1e4);
        assert!(fast_sigmoid(-1e4) >= 0.0 && fast_sigmoid(1e4) == 1.0);
    }
}
