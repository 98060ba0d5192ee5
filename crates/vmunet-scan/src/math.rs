//! Shared float numerics of the host kernels: PyTorch's `softplus`, the branch-free
//! `exp` / `softplus` / `sigmoid` the eight-lane loops use, and the eight-lane SIMD type the
//! fast kernels are written over ([`simd::F32x8`]) with its AVX2 ([`avx2`]) and NEON ([`neon`])
//! implementations. A leaf: depends on no other module of the crate.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub(crate) mod simd;

/// Channels processed together by the fast kernels (one AVX register, two NEON registers).
pub(crate) const LANES: usize = 8;

/// True when the CPU can run the SIMD kernels: AVX2 and FMA on x86-64 (checked at run time),
/// NEON on aarch64 (checked at run time, though every aarch64 Linux CPU has it).
pub(crate) fn has_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// True on x86-64 CPUs with AVX-512F and AVX-512VL, where the eight-lane kernels are also
/// compiled to use the 32 vector registers (see [`simd::simd_entry`]).
#[inline]
pub(crate) fn has_avx512vl() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The instruction set the SIMD kernels use on this CPU (`"avx2+fma"`, `"neon"`), or
/// `"portable"` where they cannot run.
pub fn simd_isa() -> &'static str {
    match (has_simd(), cfg!(target_arch = "aarch64")) {
        (false, _) => "portable",
        (true, true) => "neon",
        (true, false) if has_avx512vl() => "avx2+fma+avx512vl",
        (true, false) => "avx2+fma",
    }
}

/// Hints the CPU to bring the cache line holding `ptr` into L2 (not L1: for data needed
/// thousands of cycles later). Never faults; no effect on other targets.
#[inline(always)]
pub(crate) fn prefetch_l2(ptr: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(ptr.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is a hint; it does not fault on any address.
    unsafe {
        std::arch::asm!("prfm pldl2keep, [{p}]", p = in(reg) ptr, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = ptr;
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
/// with the Cephes `logf` polynomial and no division; within ~2 ulp of PyTorch's (threshold 20).
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
    // log1p(z) = log(w) + log(1 + c / w) with c = z - (w - 1) exact and |c| <= 2^-24 w, so
    // = log(w) + c / w to float precision; 1 / w = 1 - (w - 1) + ... to the first order is
    // enough, as c is at most half an ulp of w (and exactly z where w rounds to 1). No division.
    let l1p = (z - wm1).mul_add(1.0 - wm1, logw);
    x.max(0.0) + l1p
}

/// The logistic function `1 / (1 + exp(-x))` (the derivative of softplus), branch-free.
#[inline(always)]
pub(crate) fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// Cephes `exp2f` polynomial for `2^r - 1 = r * P(r)`, `r` in [-0.5, 0.5] (Horner order, highest
/// power first); shared by the scalar, AVX2 and NEON [`fast_exp2`].
pub(crate) const EXP2_POLY: [f32; 6] = [
    1.535_336_2e-4,
    1.339_887_4e-3,
    9.618_437e-3,
    5.550_332_5e-2,
    2.402_264_8e-1,
    6.931_472e-1,
];

/// `1.5 * 2^23 + 127`: adding it to `x` in [-126, 127] rounds `x` to the integer `n` and leaves
/// `n + 127` (the biased exponent of `2^n`) in the low mantissa bits.
pub(crate) const EXP2_MAGIC: f32 = 12_583_039.0;

/// `2^x` for float32 without branches (Cephes `exp2f` polynomial, ~2 ulp), the cheaper form of
/// [`fast_exp`] the scans use for their decays `exp(dt * A) = 2^(dt * A * log2 e)`: one rounding
/// add, one multiply, six fused multiply-adds and one shift, no second range-reduction
/// constant. `x` is clamped to [-126, 127], so the result is never subnormal, infinite or NaN
/// for finite `x`. The SIMD version ([`simd::exp2_n`]) only clamps from below: it is the same
/// for `x <= 127`, the scans' decays are `<= 0`.
#[inline(always)]
pub(crate) fn fast_exp2(x: f32) -> f32 {
    let x = x.clamp(-126.0, 127.0);
    let t = x + EXP2_MAGIC;
    let r = x - (t - EXP2_MAGIC);
    let mut p = EXP2_POLY[0];
    for k in &EXP2_POLY[1..] {
        p = p.mul_add(r, *k);
    }
    // 2^x = scale * (1 + r P(r)) = (r P(r)) * scale + scale.
    let scale = f32::from_bits(t.to_bits() << 23);
    (p * r).mul_add(scale, scale)
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
    use super::simd::{simd_entry, F32x8};
    use super::{fast_exp, fast_exp2, fast_sigmoid, fast_softplus, has_simd, LANES};

    simd_entry! {
        /// `exp`, `softplus` and the horizontal sum of `x` (a multiple of eight long) on the
        /// CPU's SIMD vectors.
        unsafe fn lanes_fast(x: &[f32], exp: &mut [f32], softplus: &mut [f32], sums: &mut Vec<f32>)
            => lanes_simd
    }

    #[inline(always)]
    unsafe fn lanes_simd<S: F32x8>(
        x: &[f32],
        exp: &mut [f32],
        softplus: &mut [f32],
        sums: &mut Vec<f32>,
    ) {
        for i in (0..x.len()).step_by(LANES) {
            let v = S::load(&x[i..]);
            v.exp().store(&mut exp[i..]);
            v.softplus().store(&mut softplus[i..]);
            sums.push(v.hsum());
        }
    }

    /// The SIMD `exp` / `softplus` (AVX2 on x86-64, NEON on aarch64) against float64 and the
    /// scalar versions, and the horizontal sum's order.
    #[test]
    fn simd_lanes_match_scalar_and_std() {
        if !has_simd() {
            eprintln!("SKIP: this CPU has no SIMD kernel (portable build)");
            return;
        }
        let x: Vec<f32> = (0..24_000).map(|i| -120.0 + i as f32 * 0.01).collect();
        let (mut e, mut sp, mut sums) = (vec![0f32; x.len()], vec![0f32; x.len()], Vec::new());
        // SAFETY: the CPU has the instruction set (checked above); x's length is a multiple of 8.
        unsafe { lanes_fast(&x, &mut e, &mut sp, &mut sums) };
        let (mut worst_exp, mut worst_sp, mut worst_vs_scalar) = (0f64, 0f64, 0f64);
        for (i, &xi) in x.iter().enumerate() {
            let xd = xi as f64;
            if xi > -87.0 && xi < 88.0 {
                worst_exp = worst_exp.max(((e[i] as f64 - xd.exp()) / xd.exp()).abs());
            }
            let scalar = fast_softplus(xi) as f64;
            worst_vs_scalar = worst_vs_scalar.max(((sp[i] as f64 - scalar) / scalar).abs());
            if xi < -60.0 {
                continue; // softplus < 1e-26: beside the point, and beyond f32 below -87
            }
            let want = if xd > 20.0 { xd } else { xd.exp().ln_1p() };
            worst_sp = worst_sp.max(((sp[i] as f64 - want) / want).abs());
        }
        assert!(worst_exp < 3e-7, "exp: worst relative error {worst_exp}");
        assert!(worst_sp < 5e-7, "softplus: worst relative error {worst_sp}");
        assert!(
            worst_vs_scalar < 5e-7,
            "softplus vs scalar: {worst_vs_scalar}"
        );
        for (chunk, sum) in x.chunks(LANES).zip(&sums) {
            let v = chunk;
            let want = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
            assert_eq!(*sum, want);
        }
    }

    /// The scalar and SIMD `exp2` against float64 and each other, across the clamped range.
    #[test]
    fn fast_exp2_matches_std_and_simd() {
        let x: Vec<f32> = (0..40_000).map(|i| -130.0 + i as f32 * 0.006_425).collect();
        let mut worst = 0f64;
        for &xi in &x {
            let want = (xi.max(-126.0) as f64).exp2();
            worst = worst.max(((fast_exp2(xi) as f64 - want) / want).abs());
        }
        assert!(worst < 3e-7, "exp2: worst relative error {worst}");
        assert_eq!(fast_exp2(0.0), 1.0);
        assert_eq!(fast_exp2(-1.0), 0.5);
        assert!(fast_exp2(-1e9) > 0.0 && fast_exp2(1e9).is_finite());
        assert!(x.iter().all(|&v| v <= 127.0));
        if has_simd() {
            let mut out = vec![0f32; x.len()];
            // SAFETY: the CPU has the instruction set; the length is a multiple of 8.
            unsafe { exp2_lanes_fast(&x, &mut out) };
            for (i, &xi) in x.iter().enumerate() {
                assert_eq!(out[i].to_bits(), fast_exp2(xi).to_bits(), "exp2({xi})");
            }
        }
    }

    simd_entry! {
        /// `exp2` of `x` (a multiple of eight long) on the CPU's SIMD vectors.
        unsafe fn exp2_lanes_fast(x: &[f32], out: &mut [f32]) => exp2_lanes_simd
    }

    #[inline(always)]
    unsafe fn exp2_lanes_simd<S: F32x8>(x: &[f32], out: &mut [f32]) {
        for i in (0..x.len()).step_by(LANES) {
            super::simd::exp2_n::<S, 1, true>([S::load(&x[i..])])[0].store(&mut out[i..]);
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
