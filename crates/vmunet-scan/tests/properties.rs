//! Property tests: the fast kernel against the float64 reference, and the backward pass
//! against finite differences.

use proptest::prelude::*;
use vmunet_scan::{CpuScan, ReferenceScan, ScanDims, ScanInputs, SelectiveScan};

/// Owned random scan arguments.
#[derive(Debug, Clone)]
struct Case {
    dims: ScanDims,
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    d: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    fn inputs(&self) -> ScanInputs<'_> {
        ScanInputs {
            dims: self.dims,
            u: &self.u,
            delta: &self.delta,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d: &self.d,
            delta_bias: &self.bias,
            delta_softplus: true,
        }
    }
}

/// Deterministic generator so a failing seed reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale + offset).collect()
    }
}

fn make_case(dims: ScanDims, seed: u64, delta_offset: f32, a_scale: f32) -> Case {
    let mut r = Rng(seed.wrapping_mul(2654435761).wrapping_add(1));
    let n = dims.x_len();
    Case {
        dims,
        u: r.vec(n, 1.0, 0.0),
        delta: r.vec(n, 2.0, delta_offset),
        a: r.vec(dims.channels * dims.d_state, 1.0, 0.0)
            .into_iter()
            .map(|x| -(x * a_scale).exp())
            .collect(),
        b: r.vec(dims.bc_len(), 1.0, 0.0),
        c: r.vec(dims.bc_len(), 1.0, 0.0),
        d: r.vec(dims.channels, 1.0, 0.0),
        bias: r.vec(dims.channels, 0.5, 0.0),
    }
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let scale = want
        .iter()
        .fold(0f64, |m, v| m.max(v.abs() as f64))
        .max(1e-30);
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    diff / scale
}

fn dims_strategy() -> impl Strategy<Value = ScanDims> {
    (1usize..3, 1usize..5, 1usize..21, 0usize..200, 1usize..20).prop_map(
        |(batch, groups, cpg, len, d_state)| ScanDims {
            batch,
            channels: groups * cpg,
            len,
            d_state,
            groups,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random shapes (channel counts that are and are not multiples of the SIMD width).
    #[test]
    fn fast_matches_reference(dims in dims_strategy(), seed in any::<u64>()) {
        let case = make_case(dims, seed, 0.0, 1.0);
        let want = ReferenceScan.forward(&case.inputs()).unwrap();
        let got = CpuScan.forward(&case.inputs()).unwrap();
        prop_assert!(got.iter().all(|v| v.is_finite()));
        let e = rel_err(&got, &want);
        prop_assert!(e <= 1e-5, "relative error {e} for {dims:?}");
    }

    /// Large delta*|A| (up to ~1e4 per step): the kernel must stay finite and exact.
    #[test]
    fn fast_matches_reference_large_decay(dims in dims_strategy(), seed in any::<u64>()) {
        let case = make_case(dims, seed, 30.0, 3.0);
        let want = ReferenceScan.forward(&case.inputs()).unwrap();
        let got = CpuScan.forward(&case.inputs()).unwrap();
        prop_assert!(got.iter().all(|v| v.is_finite()));
        let e = rel_err(&got, &want);
        prop_assert!(e <= 1e-5, "relative error {e} for {dims:?}");
    }
}

#[test]
fn long_sequence_paper_stage() {
    // One direction group of a stage-1 call at the paper's sequence length.
    let dims = ScanDims {
        batch: 1,
        channels: 24,
        len: 4096,
        d_state: 16,
        groups: 4,
    };
    let case = make_case(dims, 7, -1.0, 1.0);
    let want = ReferenceScan.forward(&case.inputs()).unwrap();
    let got = CpuScan.forward(&case.inputs()).unwrap();
    assert!(rel_err(&got, &want) <= 1e-5);
}

#[test]
fn shape_errors_are_reported() {
    let dims = ScanDims {
        batch: 1,
        channels: 4,
        len: 8,
        d_state: 2,
        groups: 2,
    };
    let mut case = make_case(dims, 1, 0.0, 1.0);
    case.b.pop();
    let err = CpuScan.forward(&case.inputs()).unwrap_err();
    assert!(err.to_string().contains("`B`"), "{err}");
    let bad = ScanDims { groups: 3, ..dims };
    let case = make_case(dims, 1, 0.0, 1.0);
    let mut inp = case.inputs();
    inp.dims = bad;
    assert!(ReferenceScan.forward(&inp).is_err());
}

/// Loss = sum(y * w) for fixed weights w; checks every gradient against central differences
/// of the float64 reference.
#[test]
fn backward_matches_finite_differences() {
    for (seed, delta_offset) in [(3u64, 0.0f32), (4, 22.0), (5, -3.0)] {
        let dims = ScanDims {
            batch: 2,
            channels: 6,
            len: 9,
            d_state: 3,
            groups: 2,
        };
        let case = make_case(dims, seed, delta_offset, 0.5);
        let mut r = Rng(seed + 100);
        let w = r.vec(dims.x_len(), 1.0, 0.0);
        let loss = |c: &Case| -> f64 {
            let y = ReferenceScan.forward(&c.inputs()).unwrap();
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let grads = CpuScan.backward(&case.inputs(), &w).unwrap();
        let check = |name: &str, analytic: &[f32], pick: &dyn Fn(&mut Case) -> &mut Vec<f32>| {
            let mut probe = case.clone();
            assert_eq!(
                pick(&mut probe).len(),
                analytic.len(),
                "{name}: gradient length"
            );
            for (i, an) in analytic.iter().enumerate() {
                let h = 1e-2f32;
                let mut plus = case.clone();
                pick(&mut plus)[i] += h;
                let mut minus = case.clone();
                pick(&mut minus)[i] -= h;
                let fd = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
                let an = *an as f64;
                let tol = 2e-3 * (1.0 + fd.abs());
                assert!(
                    (fd - an).abs() <= tol,
                    "{name}[{i}]: analytic {an} vs numeric {fd} (seed {seed})"
                );
            }
        };
        check("u", &grads.u, &|c| &mut c.u);
        check("delta", &grads.delta, &|c| &mut c.delta);
        check("A", &grads.a, &|c| &mut c.a);
        check("B", &grads.b, &|c| &mut c.b);
        check("C", &grads.c, &|c| &mut c.c);
        check("D", &grads.d, &|c| &mut c.d);
        check("delta_bias", &grads.delta_bias, &|c| &mut c.bias);
        // The reference implementation shares the backward.
        assert_eq!(ReferenceScan.backward(&case.inputs(), &w).unwrap(), grads);
    }
}

mod cross {
    use proptest::prelude::*;
    use vmunet_scan::{cross_scan, cross_scan_reference, CrossScanDims, CrossScanInputs};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The channels-last four-direction kernel against the official composition.
        #[test]
        fn cross_scan_matches_reference(
            batch in 1usize..3, height in 1usize..9, width in 1usize..9,
            blocks in 1usize..4, extra in 0usize..8, d_state in 1usize..17, dt_rank in 1usize..4,
            large in any::<bool>(), seed in any::<u64>(),
        ) {
            let dims = CrossScanDims { batch, height, width, channels: blocks * 8 + extra, d_state, dt_rank };
            let mut r = super::Rng(seed | 1);
            let (n, l, c, k) = (batch, height * width, dims.channels, 4);
            let offset = if large { 30.0 } else { 0.0 };
            let u = r.vec(n * l * c, 1.0, 0.0);
            let delta = r.vec(n * k * l * c, 2.0, offset);
            let x_dbl = r.vec(n * l * k * dims.proj(), 1.0, 0.0);
            let a: Vec<f32> = r.vec(k * c * d_state, 1.0, 0.0).into_iter().map(|x| -(x * if large { 3.0 } else { 1.0 }).exp()).collect();
            let d = r.vec(k * c, 1.0, 0.0);
            let bias = r.vec(k * c, 0.5, 0.0);
            let inp = CrossScanInputs { dims, u: &u, delta: &delta, x_dbl: &x_dbl, a: &a, d: &d, delta_bias: &bias };
            let want = cross_scan_reference(&inp).unwrap();
            let got = cross_scan(&inp).unwrap();
            prop_assert!(got.iter().all(|v| v.is_finite()));
            let e = super::rel_err(&got, &want);
            prop_assert!(e <= 1e-5, "relative error {e} for {dims:?}");
        }
    }
}

/// The property tests above exercise the SIMD kernels of the CPU they run on: NEON on aarch64
/// (under qemu in CI), AVX2 + FMA on x86-64 CPUs that have it.
#[test]
fn simd_kernels_are_selected_for_this_cpu() {
    let isa = vmunet_scan::simd_isa();
    #[cfg(target_arch = "aarch64")]
    assert_eq!(isa, "neon");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(isa.starts_with("avx2+fma"), "{isa}");
    }
    eprintln!("SIMD kernels: {isa}");
}
