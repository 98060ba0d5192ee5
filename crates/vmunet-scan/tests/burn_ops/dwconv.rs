//! SS2D's depthwise convolution as a burn op: the host kernel (ndarray) and its autodiff
//! registration agree with burn's own grouped `conv2d` and its autodiff, values and gradients.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{module::conv2d, ops::ConvOptions, Distribution, Tensor};
use vmunet_scan::DwConvBackend;

type B = Autodiff<NdArray<f32>>;

fn max_rel(a: Tensor<NdArray<f32>, 4>, b: Tensor<NdArray<f32>, 4>) -> f32 {
    let scale = b.clone().abs().max().into_scalar().max(1e-6);
    (a - b).abs().max().into_scalar() / scale
}

fn check(batch: usize, h: usize, w: usize, c: usize, k: usize) {
    let dev = Default::default();
    let pad = k / 2;
    let x = Tensor::<B, 4>::random([batch, h, w, c], Distribution::Normal(0.0, 1.0), &dev);
    let weight = Tensor::<B, 4>::random([c, 1, k, k], Distribution::Normal(0.0, 0.5), &dev);
    let bias = Tensor::<B, 1>::random([c], Distribution::Normal(0.0, 0.5), &dev);
    let probe = Tensor::<B, 4>::random([batch, h, w, c], Distribution::Normal(0.0, 1.0), &dev);

    let run = |ours: bool| {
        let (x, weight, bias) = (
            x.clone().require_grad(),
            weight.clone().require_grad(),
            bias.clone().require_grad(),
        );
        let y = if ours {
            B::depthwise_conv2d(x.clone(), weight.clone(), bias.clone(), pad)
        } else {
            let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], c);
            conv2d(
                x.clone().permute([0, 3, 1, 2]),
                weight.clone(),
                Some(bias.clone()),
                options,
            )
            .permute([0, 2, 3, 1])
        };
        // A non-trivial loss: every output element gets its own weight.
        let grads = (y.clone() * probe.clone()).sum().backward();
        (
            y.inner(),
            x.grad(&grads).expect("dx"),
            weight.grad(&grads).expect("dw"),
            bias.grad(&grads).expect("db"),
        )
    };
    let (y, dx, dw, db) = run(true);
    let (ry, rdx, rdw, rdb) = run(false);
    let tol = 1e-5;
    let e = [
        max_rel(y, ry),
        max_rel(dx, rdx),
        max_rel(dw, rdw),
        max_rel(db.unsqueeze(), rdb.unsqueeze()),
    ];
    for (name, e) in ["y", "dx", "dw", "dbias"].iter().zip(e) {
        assert!(
            e < tol,
            "{name}: max rel err {e} > {tol} (N={batch} H={h} W={w} C={c} K={k})"
        );
    }
}

#[test]
fn matches_burn_conv2d_and_its_gradients() {
    check(2, 8, 8, 16, 3);
    check(1, 5, 7, 3, 3);
    check(3, 4, 6, 8, 5);
    check(2, 1, 1, 4, 3);
}

/// The trait's defaults (burn's grouped convolution and its backward ops, what GPU backends
/// run) agree with the host kernel that burn-ndarray runs.
#[test]
fn burn_defaults_match_the_host_kernel() {
    use vmunet_scan::{burn_depthwise_conv2d, burn_depthwise_conv2d_backward};
    type H = NdArray<f32>;
    let dev = Default::default();
    for (batch, h, w, c, k) in [(2, 8, 8, 16, 3), (1, 5, 7, 3, 3), (2, 4, 6, 8, 5)] {
        let pad = k / 2;
        let x = Tensor::<H, 4>::random([batch, h, w, c], Distribution::Normal(0.0, 1.0), &dev);
        let weight = Tensor::<H, 4>::random([c, 1, k, k], Distribution::Normal(0.0, 0.5), &dev);
        let bias = Tensor::<H, 1>::random([c], Distribution::Normal(0.0, 0.5), &dev);
        let dy = Tensor::<H, 4>::random([batch, h, w, c], Distribution::Normal(0.0, 1.0), &dev);
        let y = burn_depthwise_conv2d(x.clone(), weight.clone(), bias.clone(), pad);
        let want = H::depthwise_conv2d(x.clone(), weight.clone(), bias, pad);
        assert!(max_rel(y, want) < 1e-5);
        let g = burn_depthwise_conv2d_backward(x.clone(), weight.clone(), pad, dy.clone());
        let want = H::depthwise_conv2d_backward(x, weight, pad, dy);
        assert!(max_rel(g.x, want.x) < 1e-5, "dx");
        assert!(max_rel(g.weight, want.weight) < 1e-5, "dw");
        assert!(
            max_rel(g.bias.unsqueeze(), want.bias.unsqueeze()) < 1e-5,
            "dbias"
        );
    }
}
