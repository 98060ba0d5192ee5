//! Eight float32 lanes behind one trait, so each fast kernel is written once and compiled for
//! every instruction set: [`super::avx2::Avx2`] (one `__m256`, x86-64 with AVX2 + FMA) and
//! [`super::neon::Neon`] (two `float32x4_t`, aarch64).
//!
//! A kernel is a generic `#[inline(always)] unsafe fn kernel<S: F32x8>(..)`; [`simd_entry!`]
//! wraps it in one entry point per architecture, compiled with `#[target_feature]`, so the
//! lane operations (all `#[inline(always)]`) are inlined into code built for the instruction
//! set. Both instruction sets use fused multiply-adds in the same places and the same
//! `exp` / `softplus` polynomials as [`super::fast_exp`] / [`super::fast_softplus`], so AVX2
//! and NEON give the same float32 results.

/// Eight float32 lanes. Every method is `unsafe`: it may only run where the CPU has the
/// instruction set (the callers check [`super::has_simd`]).
pub(crate) trait F32x8: Copy {
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// All lanes zero.
    unsafe fn zero() -> Self {
        Self::splat(0.0)
    }
    /// Lanes `src[0..8]` (panics when `src` is shorter).
    unsafe fn load(src: &[f32]) -> Self;
    /// Writes the lanes to `dst[0..8]` (panics when `dst` is shorter).
    unsafe fn store(self, dst: &mut [f32]);
    /// `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// `self / o`.
    unsafe fn div(self, o: Self) -> Self;
    /// `self * b + c`, fused (one rounding).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// [`super::fast_exp`] per lane.
    unsafe fn exp(self) -> Self;
    /// `max(self, o)` per lane.
    unsafe fn max(self, o: Self) -> Self;
    /// Each lane's bits shifted left by 23 (an integer in the low bits becomes an exponent).
    unsafe fn shl23(self) -> Self;
    /// [`super::fast_softplus`] per lane (PyTorch's softplus, threshold 20, to ~1 ulp).
    unsafe fn softplus(self) -> Self;
    /// Sum of the lanes as `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))`, the order of
    /// the portable kernels' horizontal sum.
    unsafe fn hsum(self) -> f32;
}

/// [`super::fast_exp2`] of `N` vectors whose lanes are `<= 127` (bit-identical to it there),
/// stage by stage: the `N` dependency chains (each about 40 cycles long) are interleaved in
/// program order, so a CPU's scheduler, which sees only a window of the instruction stream,
/// always has `N` independent operations to issue.
///
/// With `CLAMP = false` the caller guarantees every lane is `>= -126` already (the clamp is
/// then the identity and is skipped: one operation fewer per vector).
#[inline(always)]
pub(crate) unsafe fn exp2_n<S: F32x8, const N: usize, const CLAMP: bool>(x: [S; N]) -> [S; N] {
    let (lo, magic) = (S::splat(-126.0), S::splat(super::EXP2_MAGIC));
    let x = if CLAMP { x.map(|v| v.max(lo)) } else { x };
    let t = x.map(|v| v.add(magic));
    let mut r = x;
    for i in 0..N {
        r[i] = x[i].sub(t[i].sub(magic));
    }
    let mut p = [S::splat(super::EXP2_POLY[0]); N];
    for k in &super::EXP2_POLY[1..] {
        let k = S::splat(*k);
        for i in 0..N {
            p[i] = p[i].mul_add(r[i], k);
        }
    }
    for i in 0..N {
        let scale = t[i].shl23();
        p[i] = p[i].mul(r[i]).mul_add(scale, scale);
    }
    p
}

/// Defines `unsafe fn NAME(args)` that runs the generic kernel `GENERIC::<S>(args)` with the
/// instruction set of the target: `Avx2` inside an `avx2,fma` function on x86-64, `Neon` inside
/// a `neon` function on aarch64. Callers check [`super::has_simd`] first; on other targets it
/// is never called (it panics).
macro_rules! simd_entry {
    ($(#[$meta:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $generic:ident) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn entry_avx2($($arg: $ty),*) {
                $generic::<$crate::math::avx2::Avx2>($($arg),*)
            }
            // The same eight-lane code where AVX-512VL exists: 32 vector registers instead of
            // 16 (fewer spills and reloaded constants), identical arithmetic and results.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn entry_avx512vl($($arg: $ty),*) {
                $generic::<$crate::math::avx2::Avx2>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn entry($($arg: $ty),*) {
                if $crate::math::has_avx512vl() {
                    entry_avx512vl($($arg),*)
                } else {
                    entry_avx2($($arg),*)
                }
            }
            #[cfg(target_arch = "aarch64")]
            #[target_feature(enable = "neon")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn entry($($arg: $ty),*) {
                $generic::<$crate::math::neon::Neon>($($arg),*)
            }
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            #[allow(clippy::too_many_arguments)]
            unsafe fn entry($($arg: $ty),*) {
                $(let _ = $arg;)*
                unreachable!("no SIMD kernel on this architecture")
            }
            entry($($arg),*)
        }
    };
}
pub(crate) use simd_entry;
