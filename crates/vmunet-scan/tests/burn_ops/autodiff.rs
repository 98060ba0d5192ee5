//! The scan as a differentiable burn op: gradients reach every input, equal to the host
//! backward, and a loss through it matches finite differences.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use vmunet_scan::{cross_scan_backward, CrossScanDims, CrossScanInputs, ScanBackend};

type B = Autodiff<NdArray<f32>>;

struct Case {
    dims: CrossScanDims,
    u: Vec<f32>,
    delta: Vec<f32>,
    x_dbl: Vec<f32>,
    a: Vec<f32>,
    d: Vec<f32>,
    bias: Vec<f32>,
    w: Vec<f32>,
}

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn case() -> Case {
    let dims = CrossScanDims {
        batch: 2,
        height: 3,
        width: 4,
        channels: 5,
        d_state: 3,
        dt_rank: 2,
    };
    let mut s = 7u64;
    let mut v = |n: usize, scale: f32, off: f32| -> Vec<f32> {
        (0..n).map(|_| lcg(&mut s) * scale + off).collect()
    };
    let (n, l, c, k, st) = (dims.batch, dims.len(), dims.channels, 4, dims.d_state);
    Case {
        u: v(n * l * c, 1.0, 0.0),
        delta: v(n * k * l * c, 1.0, -0.5),
        x_dbl: v(n * l * k * dims.proj(), 1.0, 0.0),
        a: v(k * c * st, 0.5, -1.0),
        d: v(k * c, 1.0, 0.0),
        bias: v(k * c, 0.5, 0.0),
        w: v(n * l * c, 1.0, 0.0),
        dims,
    }
}

fn t<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default()).require_grad()
}

fn host<const D: usize>(t: Tensor<NdArray<f32>, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

#[test]
fn gradients_reach_every_input_and_equal_the_host_backward() {
    let c = case();
    let d = c.dims;
    let (n, l, ch, k, s, p) = (d.batch, d.len(), d.channels, 4, d.d_state, d.proj());
    let u = t(&c.u, [n, l, ch]);
    let delta = t(&c.delta, [n, k, l, ch]);
    let x_dbl = t(&c.x_dbl, [n, l, k, p]);
    let a = t(&c.a, [k * ch, s]);
    let dd = t(&c.d, [k * ch]);
    let bias = t(&c.bias, [k * ch]);
    let w = Tensor::<B, 3>::from_data(
        TensorData::new(c.w.clone(), [n, l, ch]),
        &Default::default(),
    );
    let y = B::selective_scan_2d(
        d,
        u.clone(),
        delta.clone(),
        x_dbl.clone(),
        a.clone(),
        dd.clone(),
        bias.clone(),
    );
    let grads = (y * w).sum().backward();
    let want = cross_scan_backward(
        &CrossScanInputs {
            dims: d,
            u: &c.u,
            delta: &c.delta,
            x_dbl: &c.x_dbl,
            a: &c.a,
            d: &c.d,
            delta_bias: &c.bias,
        },
        &c.w,
    )
    .unwrap();
    let close = |name: &str, got: Vec<f32>, want: &[f32]| {
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * scale, "{name}[{i}]: {g} vs {w}");
        }
        assert!(
            want.iter().any(|v| v.abs() > 1e-6),
            "{name}: all-zero gradient"
        );
    };
    close("u", host(u.grad(&grads).unwrap()), &want.u);
    close("delta", host(delta.grad(&grads).unwrap()), &want.delta);
    close("x_dbl", host(x_dbl.grad(&grads).unwrap()), &want.x_dbl);
    close("A", host(a.grad(&grads).unwrap()), &want.a);
    close("D", host(dd.grad(&grads).unwrap()), &want.d);
    close(
        "delta_bias",
        host(bias.grad(&grads).unwrap()),
        &want.delta_bias,
    );
}

#[test]
fn loss_through_the_op_matches_finite_differences() {
    let c = case();
    let d = c.dims;
    let (n, l, ch, k, s, p) = (d.batch, d.len(), d.channels, 4, d.d_state, d.proj());
    let eval = |a_vals: &[f32]| -> f64 {
        let y = <NdArray<f32> as ScanBackend>::selective_scan_2d(
            d,
            Tensor::from_data(
                TensorData::new(c.u.clone(), [n, l, ch]),
                &Default::default(),
            ),
            Tensor::from_data(
                TensorData::new(c.delta.clone(), [n, k, l, ch]),
                &Default::default(),
            ),
            Tensor::from_data(
                TensorData::new(c.x_dbl.clone(), [n, l, k, p]),
                &Default::default(),
            ),
            Tensor::from_data(
                TensorData::new(a_vals.to_vec(), [k * ch, s]),
                &Default::default(),
            ),
            Tensor::from_data(TensorData::new(c.d.clone(), [k * ch]), &Default::default()),
            Tensor::from_data(
                TensorData::new(c.bias.clone(), [k * ch]),
                &Default::default(),
            ),
        );
        let y = host(y);
        y.iter()
            .zip(&c.w)
            .map(|(y, w)| (*y as f64) * (*w as f64))
            .sum()
    };
    let a = t(&c.a, [k * ch, s]);
    let y = B::selective_scan_2d(
        d,
        t(&c.u, [n, l, ch]),
        t(&c.delta, [n, k, l, ch]),
        t(&c.x_dbl, [n, l, k, p]),
        a.clone(),
        t(&c.d, [k * ch]),
        t(&c.bias, [k * ch]),
    );
    let w = Tensor::<B, 3>::from_data(
        TensorData::new(c.w.clone(), [n, l, ch]),
        &Default::default(),
    );
    let grads = (y * w).sum().backward();
    let ga = host(a.grad(&grads).unwrap());
    for i in [0, 7, 23, k * ch * s - 1] {
        let h = 1e-2f32;
        let mut plus = c.a.clone();
        plus[i] += h;
        let mut minus = c.a.clone();
        minus[i] -= h;
        let fd = (eval(&plus) - eval(&minus)) / (2.0 * h as f64);
        assert!(
            (fd - ga[i] as f64).abs() < 2e-2 * fd.abs().max(0.1),
            "dA[{i}]: autodiff {} vs finite difference {fd}",
            ga[i]
        );
    }
}
