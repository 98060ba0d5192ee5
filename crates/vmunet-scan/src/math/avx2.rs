//! Eight-lane AVX2 + FMA versions of [`super::fast_exp`] and [`super::fast_softplus`] (same
//! constants, same polynomials), and [`Avx2`], the [`F32x8`] the kernels run on x86-64.
//! Callers check [`super::has_simd`] first.

use std::arch::x86_64::*;

use super::simd::F32x8;

/// One `__m256`: the x86-64 [`F32x8`] (AVX2 + FMA).
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

impl F32x8 for Avx2 {
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Self(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(src: &[f32]) -> Self {
        Self(_mm256_loadu_ps(src[..8].as_ptr()))
    }
    #[inline(always)]
    unsafe fn store(self, dst: &mut [f32]) {
        _mm256_storeu_ps(dst[..8].as_mut_ptr(), self.0)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        Self(_mm256_add_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        Self(_mm256_sub_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        Self(_mm256_mul_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        Self(_mm256_div_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Self(_mm256_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        Self(exp256(self.0))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        Self(_mm256_max_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn shl23(self) -> Self {
        Self(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(
            _mm256_castps_si256(self.0),
        )))
    }
    #[inline(always)]
    unsafe fn softplus(self) -> Self {
        Self(softplus256(self.0))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        let v = self.0;
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }
}

/// `softplus(x) = max(x, 0) + log1p(exp(-|x|))`; equals PyTorch's (threshold 20) to ~1 ulp.
#[inline(always)]
unsafe fn softplus256(x: __m256) -> __m256 {
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
    // log1p(z) = log(w) + (z - (w - 1)) (1 - (w - 1)): see `fast_softplus`.
    let l1p = _mm256_fmadd_ps(_mm256_sub_ps(z, wm1), _mm256_sub_ps(one, wm1), logw);
    _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), l1p)
}

/// Eight-lane version of [`super::fast_exp`] (same constants, same results).
#[inline(always)]
unsafe fn exp256(x: __m256) -> __m256 {
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
