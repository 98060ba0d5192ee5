//! Four-lane NEON versions of [`super::fast_exp`] and [`super::fast_softplus`] (same constants,
//! same polynomials, fused multiply-adds where the AVX2 versions have them), and [`Neon`], the
//! [`F32x8`] the kernels run on aarch64: two `float32x4_t`.
//! NEON is part of the aarch64 baseline; callers still check [`super::has_simd`].

use std::arch::aarch64::*;

use super::simd::F32x8;

/// Two `float32x4_t`: lanes 0..4 and 4..8.
#[derive(Clone, Copy)]
pub(crate) struct Neon(float32x4_t, float32x4_t);

impl Neon {
    /// `f` on both halves.
    #[inline(always)]
    unsafe fn map(self, f: impl Fn(float32x4_t) -> float32x4_t) -> Self {
        Self(f(self.0), f(self.1))
    }

    /// `f` on both halves of `self` and `o`.
    #[inline(always)]
    unsafe fn zip(self, o: Self, f: impl Fn(float32x4_t, float32x4_t) -> float32x4_t) -> Self {
        Self(f(self.0, o.0), f(self.1, o.1))
    }
}

impl F32x8 for Neon {
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Self(vdupq_n_f32(x), vdupq_n_f32(x))
    }
    #[inline(always)]
    unsafe fn load(src: &[f32]) -> Self {
        let s = &src[..8];
        Self(vld1q_f32(s.as_ptr()), vld1q_f32(s[4..].as_ptr()))
    }
    #[inline(always)]
    unsafe fn store(self, dst: &mut [f32]) {
        let d = &mut dst[..8];
        vst1q_f32(d.as_mut_ptr(), self.0);
        vst1q_f32(d[4..].as_mut_ptr(), self.1);
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| vaddq_f32(a, b))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| vsubq_f32(a, b))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        self.zip(o, |a, b| vmulq_f32(a, b))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        self.zip(o, |a, b| vdivq_f32(a, b))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Self(vfmaq_f32(c.0, self.0, b.0), vfmaq_f32(c.1, self.1, b.1))
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        self.map(|v| exp4(v))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        self.zip(o, |a, b| vmaxq_f32(a, b))
    }
    #[inline(always)]
    unsafe fn shl23(self) -> Self {
        self.map(|v| vreinterpretq_f32_u32(vshlq_n_u32::<23>(vreinterpretq_u32_f32(v))))
    }
    #[inline(always)]
    unsafe fn softplus(self) -> Self {
        self.map(|v| softplus4(v))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // (v0 + v4, v1 + v5, v2 + v6, v3 + v7), then ((..0 + ..2), (..1 + ..3)), then their sum.
        let s = vaddq_f32(self.0, self.1);
        let t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
        vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
    }
}

/// `exp` per lane: [`super::fast_exp`] with fused multiply-adds.
#[inline(always)]
unsafe fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(
        vmaxq_f32(x, vdupq_n_f32(-87.336_54)),
        vdupq_n_f32(88.376_26),
    );
    let magic = vdupq_n_f32(12_582_912.0);
    let t = vfmaq_f32(magic, x, vdupq_n_f32(std::f32::consts::LOG2_E));
    let n = vsubq_f32(t, magic);
    let ni = vsubq_s32(vreinterpretq_s32_f32(t), vreinterpretq_s32_f32(magic));
    let r = vfmsq_f32(x, n, vdupq_n_f32(0.693_359_4));
    let r = vfmsq_f32(r, n, vdupq_n_f32(-2.121_944_4e-4));
    let mut p = vdupq_n_f32(1.987_569_1e-4);
    for k in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = vfmaq_f32(vdupq_n_f32(k), p, r);
    }
    let e = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0));
    let scale = vshlq_n_s32::<23>(vaddq_s32(ni, vdupq_n_s32(127)));
    vmulq_f32(e, vreinterpretq_f32_s32(scale))
}

/// `softplus(x) = max(x, 0) + log1p(exp(-|x|))` per lane: [`super::fast_softplus`] with fused
/// multiply-adds.
#[inline(always)]
unsafe fn softplus4(x: float32x4_t) -> float32x4_t {
    let neg_abs = vreinterpretq_f32_u32(vorrq_u32(
        vreinterpretq_u32_f32(x),
        vdupq_n_u32(0x8000_0000),
    ));
    let z = exp4(neg_abs); // (0, 1]
    let one = vdupq_n_f32(1.0);
    let zero = vdupq_n_f32(0.0);
    let w = vaddq_f32(one, z); // [1, 2], so w - 1 is exact
    let wm1 = vsubq_f32(w, one);
    // log(w) with the Cephes logf polynomial: w = 2^e (1 + m), m in [-0.29, 0.42].
    let big = vcgtq_f32(w, vdupq_n_f32(std::f32::consts::SQRT_2));
    let m = vbslq_f32(big, vfmaq_f32(vdupq_n_f32(-1.0), w, vdupq_n_f32(0.5)), wm1);
    let e = vbslq_f32(big, one, zero);
    let mm = vmulq_f32(m, m);
    let mut p = vdupq_n_f32(7.037_683_6e-2);
    for k in super::LOGF_POLY {
        p = vfmaq_f32(vdupq_n_f32(k), p, m);
    }
    let mut y = vmulq_f32(vmulq_f32(p, m), mm);
    y = vfmaq_f32(y, e, vdupq_n_f32(-2.121_944_4e-4));
    y = vfmsq_f32(y, vdupq_n_f32(0.5), mm);
    let logw = vfmaq_f32(vaddq_f32(m, y), e, vdupq_n_f32(0.693_359_4));
    // log1p(z) = log(w) + (z - (w - 1)) (1 - (w - 1)): see `fast_softplus`.
    let l1p = vfmaq_f32(logw, vsubq_f32(z, wm1), vsubq_f32(one, wm1));
    vaddq_f32(vmaxq_f32(x, zero), l1p)
}
