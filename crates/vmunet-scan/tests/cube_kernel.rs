//! The CubeCL cross-scan kernels (forward and backward) on burn-wgpu against the host
//! implementations (`cross_scan`, `cross_scan_backward`).
//!
//! Needs a Vulkan adapter. On a machine without a GPU, `make lavapipe` installs Mesa's software
//! Vulkan driver and `make test-kernel` runs this file with the right environment. Without an
//! adapter the test fails, unless `VMUNET_SKIP_GPU_KERNEL=1`. Built only with the `wgpu`
//! feature (`required-features` in Cargo.toml).

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::tensor::{Tensor, TensorData};
use burn_cubecl::CubeBackend;
use vmunet_scan::{
    cross_scan, cross_scan_backward, CrossScanDims, CrossScanInputs, ScanBackend, DIRECTIONS,
};

type B = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// Relative tolerance: max |got - want| over max |want|.
const TOL: f32 = 1e-4;

/// SplitMix64, so the test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).collect()
    }
}

/// The device, or a clear failure (a skip with `VMUNET_SKIP_GPU_KERNEL=1`).
fn device() -> Option<WgpuDevice> {
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        if std::env::var_os("MESA_SHADER_CACHE_DISABLE").is_none() {
            std::env::set_var("MESA_SHADER_CACHE_DISABLE", "true");
        }
    });
    let device = WgpuDevice::default();
    let probe = std::panic::catch_unwind(|| {
        let t = Tensor::<B, 1>::from_floats([1.0, 2.0], &WgpuDevice::default());
        t.sum().into_scalar()
    });
    match probe {
        Ok(v) if (v - 3.0).abs() < 1e-6 => Some(device),
        other => {
            let why = match other {
                Ok(v) => format!("a probe sum returned {v} instead of 3"),
                Err(e) => e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
            };
            if std::env::var("VMUNET_SKIP_GPU_KERNEL").as_deref() == Ok("1") {
                println!("SKIP cube_kernel: no usable wgpu adapter ({why})");
                None
            } else {
                panic!(
                    "no usable wgpu/Vulkan adapter for the CubeCL scan kernel tests ({why}; the wgpu \
                     panic above, if any, has the cause).\n\
                     On a machine without a GPU run `make lavapipe` (Mesa's software Vulkan) and \
                     then `make test-kernel`, or export VK_ICD_FILENAMES=<lvp_icd json> yourself. \
                     Set VMUNET_SKIP_GPU_KERNEL=1 to skip these tests."
                );
            }
        }
    }
}

struct Case {
    dims: CrossScanDims,
    u: Vec<f32>,
    delta: Vec<f32>,
    x_dbl: Vec<f32>,
    a: Vec<f32>,
    d: Vec<f32>,
    bias: Vec<f32>,
    dy: Vec<f32>,
}

impl Case {
    fn new(dims: CrossScanDims, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let (n, l, c, k, s) = (
            dims.batch,
            dims.len(),
            dims.channels,
            DIRECTIONS,
            dims.d_state,
        );
        // A = -exp(A_log) with A_log = log(1..=S), as in the mamba init, jittered.
        let a = (0..k * c * s)
            .map(|i| -((1 + i % s) as f32) * (0.5 + rng.next()))
            .collect();
        Case {
            dims,
            u: rng.uniform(-1.0, 1.0, n * l * c),
            // Raw delta: softplus(delta + bias) spans ~0.002 .. 1.
            delta: rng.uniform(-6.0, 0.5, n * k * l * c),
            x_dbl: rng.uniform(-1.0, 1.0, n * l * k * dims.proj()),
            a,
            d: rng.uniform(-1.0, 1.0, k * c),
            bias: rng.uniform(-0.5, 0.5, k * c),
            dy: rng.uniform(-1.0, 1.0, n * l * c),
        }
    }

    fn inputs(&self) -> CrossScanInputs<'_> {
        CrossScanInputs {
            dims: self.dims,
            u: &self.u,
            delta: &self.delta,
            x_dbl: &self.x_dbl,
            a: &self.a,
            d: &self.d,
            delta_bias: &self.bias,
        }
    }
}

fn t<const D: usize>(v: &[f32], shape: [usize; D], device: &WgpuDevice) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

fn host<const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().into_vec::<f32>().unwrap()
}

/// `max |got - want| / max |want|` (absolute when `want` is all zero).
fn rel_err(name: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(want).fold(0f32, |m, (g, w)| {
        if g.is_finite() {
            m.max((g - w).abs())
        } else {
            f32::INFINITY
        }
    });
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

/// Runs the kernels on one case and returns the relative errors
/// `[y, du, ddelta, dx_dbl, dA, dD, dbias]`.
fn check(case: &Case, device: &WgpuDevice) -> [f32; 7] {
    let d = case.dims;
    let (n, l, c, k, s, p) = (
        d.batch,
        d.len(),
        d.channels,
        DIRECTIONS,
        d.d_state,
        d.proj(),
    );
    let args = || {
        (
            t(&case.u, [n, l, c], device),
            t(&case.delta, [n, k, l, c], device),
            t(&case.x_dbl, [n, l, k, p], device),
            t(&case.a, [k * c, s], device),
            t(&case.d, [k * c], device),
            t(&case.bias, [k * c], device),
        )
    };
    let (u, delta, x_dbl, a, dd, bias) = args();
    let y = host(B::selective_scan_2d(d, u, delta, x_dbl, a, dd, bias));
    let y_want = cross_scan(&case.inputs()).unwrap();

    let (u, delta, x_dbl, a, dd, bias) = args();
    let dy = t(&case.dy, [n, l, c], device);
    let g = B::selective_scan_2d_backward(d, u, delta, x_dbl, a, dd, bias, dy);
    assert_eq!(g.u.dims(), [n, l, c]);
    assert_eq!(g.delta.dims(), [n, k, l, c]);
    assert_eq!(g.x_dbl.dims(), [n, l, k, p]);
    assert_eq!(g.a.dims(), [k * c, s]);
    assert_eq!(g.d.dims(), [k * c]);
    assert_eq!(g.delta_bias.dims(), [k * c]);
    let want = cross_scan_backward(&case.inputs(), &case.dy).unwrap();
    [
        rel_err("y", &y, &y_want),
        rel_err("du", &host(g.u), &want.u),
        rel_err("ddelta", &host(g.delta), &want.delta),
        rel_err("dx_dbl", &host(g.x_dbl), &want.x_dbl),
        rel_err("dA", &host(g.a), &want.a),
        rel_err("dD", &host(g.d), &want.d),
        rel_err("dbias", &host(g.delta_bias), &want.delta_bias),
    ]
}

fn dims(
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
    d_state: usize,
    dt_rank: usize,
) -> CrossScanDims {
    CrossScanDims {
        batch,
        height,
        width,
        channels,
        d_state,
        dt_rank,
    }
}

#[test]
fn cube_kernel_matches_host_scan() {
    let Some(device) = device() else { return };
    const NAMES: [&str; 7] = ["y", "du", "ddelta", "dx_dbl", "dA", "dD", "dbias"];
    let cases = [
        // (dims, seed): odd maps, several chunks (L up to 256), D not a multiple of the
        // 64-channel block, S = 1 and 16, R = 1..6.
        (dims(1, 3, 5, 7, 1, 1), 1),
        (dims(2, 4, 4, 10, 16, 2), 2),
        (dims(1, 8, 6, 70, 16, 3), 3),
        (dims(2, 16, 16, 20, 16, 6), 4),
        (dims(1, 12, 11, 65, 1, 4), 5),
        (dims(2, 9, 15, 33, 5, 5), 6),
        (dims(1, 1, 1, 3, 16, 1), 7),
        (dims(1, 5, 13, 130, 16, 2), 8),
    ];
    let mut worst = [0f32; 7];
    let mut failures = Vec::new();
    for (d, seed) in cases {
        let case = Case::new(d, seed);
        let errs = check(&case, &device);
        println!(
            "{:?} seed {seed}: {}",
            d,
            NAMES
                .iter()
                .zip(errs)
                .map(|(n, e)| format!("{n} {e:.2e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (i, e) in errs.iter().enumerate() {
            worst[i] = worst[i].max(*e);
            if e.is_nan() || *e > TOL {
                failures.push(format!(
                    "{d:?} seed {seed}: {} relative error {e:e}",
                    NAMES[i]
                ));
            }
        }
    }
    println!(
        "max relative errors: {}",
        NAMES
            .iter()
            .zip(worst)
            .map(|(n, e)| format!("{n} {e:.2e}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        failures.is_empty(),
        "tolerance {TOL:e} exceeded:\n{}",
        failures.join("\n")
    );
}

#[test]
fn large_d_state_is_rejected() {
    let Some(device) = device() else { return };
    let case = Case::new(dims(1, 2, 2, 4, 65, 1), 9);
    let d = case.dims;
    let (n, l, c, k, s, p) = (
        d.batch,
        d.len(),
        d.channels,
        DIRECTIONS,
        d.d_state,
        d.proj(),
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        B::selective_scan_2d(
            d,
            t(&case.u, [n, l, c], &device),
            t(&case.delta, [n, k, l, c], &device),
            t(&case.x_dbl, [n, l, k, p], &device),
            t(&case.a, [k * c, s], &device),
            t(&case.d, [k * c], &device),
            t(&case.bias, [k * c], &device),
        )
    }));
    let Err(msg) = r else {
        panic!("d_state 65 must be rejected")
    };
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("d_state 65"), "{msg}");
}

/// Training path: `Autodiff<CubeBackend<Wgpu>>` runs the kernel forward and, in `backward`,
/// the kernel backward; the gradients reaching the inputs equal the host backward's.
#[test]
fn autodiff_on_wgpu_uses_the_kernel_backward() {
    use burn::backend::Autodiff;
    type A = Autodiff<B>;
    let Some(device) = device() else { return };
    let case = Case::new(dims(2, 4, 6, 10, 16, 2), 11);
    let d = case.dims;
    let (n, l, c, k, s, p) = (
        d.batch,
        d.len(),
        d.channels,
        DIRECTIONS,
        d.d_state,
        d.proj(),
    );
    let ta = |v: &[f32], shape: Vec<usize>| {
        Tensor::<A, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device)
            .reshape::<4, _>([shape[0], shape[1], shape[2], shape[3]])
            .require_grad()
    };
    let u = ta(&case.u, vec![1, n, l, c]);
    let delta = ta(&case.delta, vec![n, k, l, c]);
    let x_dbl = ta(&case.x_dbl, vec![n, l, k, p]);
    let a = ta(&case.a, vec![1, 1, k * c, s]);
    let dd = ta(&case.d, vec![1, 1, 1, k * c]);
    let bias = ta(&case.bias, vec![1, 1, 1, k * c]);
    let y = A::selective_scan_2d(
        d,
        u.clone().reshape([n, l, c]),
        delta.clone(),
        x_dbl.clone(),
        a.clone().reshape([k * c, s]),
        dd.clone().reshape([k * c]),
        bias.clone().reshape([k * c]),
    );
    let w = Tensor::<A, 3>::from_data(TensorData::new(case.dy.clone(), [n, l, c]), &device);
    // `backward` seeds ones; d(y * w)/dy = w, so the scan's upstream gradient is `dy`.
    let grads = (y * w).backward();
    let want = vmunet_scan::cross_scan_backward(&case.inputs(), &case.dy).unwrap();
    let get = |t: &Tensor<A, 4>| -> Vec<f32> {
        t.grad(&grads)
            .expect("gradient reaches the input")
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    for (name, got, want) in [
        ("u", get(&u), &want.u),
        ("delta", get(&delta), &want.delta),
        ("x_dbl", get(&x_dbl), &want.x_dbl),
        ("A", get(&a), &want.a),
        ("D", get(&dd), &want.d),
        ("delta_bias", get(&bias), &want.delta_bias),
    ] {
        let e = rel_err(name, &got, want);
        assert!(e < 1e-4, "{name}: relative error {e}");
    }
}
