//! Eight-lane AVX2 + FMA versions of [`super::fast_exp`] and [`super::fast_softplus`] (same
//! constants, same polynomials). Callers check [`super::has_avx2_fma`] first.

use std::arch::x86_64::*;

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
