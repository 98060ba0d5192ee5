//! The paper's losses, as the official `utils.py` defines them.

use burn::tensor::{activation, backend::Backend, Tensor};

use crate::LossKind;

/// `BceDiceLoss(wb = 1, wd = 1)` for one-class logits `(N, 1, H, W)` and a 0/1 target
/// `(N, H, W)`: mean binary cross-entropy of `sigmoid(logits)` over all pixels, plus
/// `1 - mean_n (2 sum(p t) + 1) / (sum p + sum t + 1)` (smooth 1, per image).
/// The BCE is computed from the logits (`log_sigmoid`), which is the same value without
/// PyTorch's clamp of `log p` at -100.
pub fn bce_dice<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3>) -> Tensor<B, 1> {
    let [n, _, h, w] = logits.dims();
    let x = logits.reshape([n, h * w]);
    let t = target.reshape([n, h * w]);
    let bce = (t.clone() * activation::log_sigmoid(x.clone())
        + (t.clone().neg() + 1.0) * activation::log_sigmoid(x.clone().neg()))
    .mean()
    .neg();
    let p = activation::sigmoid(x);
    let inter = (p.clone() * t.clone()).sum_dim(1);
    let score = (inter * 2.0 + 1.0) / (p.sum_dim(1) + t.sum_dim(1) + 1.0);
    let dice = score.mean().neg() + 1.0;
    bce + dice
}

/// `CeDiceLoss(num_classes, [0.4, 0.6])` for logits `(N, K, H, W)` and class indices
/// `(N, H, W)` stored as floats: `0.4 CE + 0.6 mean_k (1 - (2 I_k + 1e-5) / (Z_k + Y_k + 1e-5))`
/// with softmax probabilities, `I_k = sum p_k t_k`, `Z_k = sum p_k^2`, `Y_k = sum t_k` over the
/// whole batch (TransUNet's Dice, background included).
pub fn ce_dice<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3>) -> Tensor<B, 1> {
    let [n, k, h, w] = logits.dims();
    let onehot = one_hot(target, k);
    let logp = activation::log_softmax(logits.clone(), 1);
    let ce = (logp * onehot.clone()).sum_dim(1).mean().neg();
    let p = activation::softmax(logits, 1);
    let per_class = |t: Tensor<B, 4>| t.swap_dims(0, 1).reshape([k, n * h * w]).sum_dim(1);
    let inter = per_class(p.clone() * onehot.clone());
    let z = per_class(p.clone() * p);
    let y = per_class(onehot);
    let dice = ((inter * 2.0 + 1e-5) / (z + y + 1e-5)).neg() + 1.0;
    ce * 0.4 + dice.mean() * 0.6
}

/// One-hot `(N, K, H, W)` of class indices `(N, H, W)` held as floats.
pub fn one_hot<B: Backend>(target: Tensor<B, 3>, k: usize) -> Tensor<B, 4> {
    let [n, h, w] = target.dims();
    let classes = Tensor::<B, 1, burn::tensor::Int>::arange(0..k as i64, &target.device())
        .float()
        .reshape([1, k, 1, 1]);
    target.reshape([n, 1, h, w]).equal(classes).float()
}

/// Applies `kind` to logits and targets.
pub fn loss<B: Backend>(
    kind: LossKind,
    logits: Tensor<B, 4>,
    target: Tensor<B, 3>,
) -> Tensor<B, 1> {
    match kind {
        LossKind::BceDice => bce_dice(logits, target),
        LossKind::CeDice => ce_dice(logits, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    fn t4(v: Vec<f32>, s: [usize; 4]) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(v, s), &Default::default())
    }
    fn t3(v: Vec<f32>, s: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(v, s), &Default::default())
    }
    fn scalar(t: Tensor<B, 1>) -> f64 {
        t.into_scalar() as f64
    }
    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn bce_dice_by_hand() {
        // Two images of 2 pixels. Logits 0 -> p = 0.5; ln 2 per pixel for BCE.
        let logits = t4(vec![0.0, 2.0, -1.0, 0.0], [2, 1, 1, 2]);
        let target = t3(vec![1.0, 1.0, 0.0, 1.0], [2, 1, 2]);
        let p = [0.5, sig(2.0), sig(-1.0), 0.5];
        let t = [1.0, 1.0, 0.0, 1.0];
        let bce: f64 = p
            .iter()
            .zip(t)
            .map(|(p, t): (&f64, f64)| -(t * p.ln() + (1.0 - t) * (1.0 - p).ln()))
            .sum::<f64>()
            / 4.0;
        let d0 = (2.0 * (p[0] + p[1]) + 1.0) / (p[0] + p[1] + 2.0 + 1.0);
        let d1 = (2.0 * p[3] + 1.0) / (p[2] + p[3] + 1.0 + 1.0);
        let want = bce + 1.0 - (d0 + d1) / 2.0;
        let got = scalar(bce_dice(logits, target));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn bce_dice_is_small_for_confident_correct_logits() {
        let logits = t4(vec![30.0, -30.0, 30.0, -30.0], [1, 1, 2, 2]);
        let target = t3(vec![1.0, 0.0, 1.0, 0.0], [1, 2, 2]);
        let got = scalar(bce_dice(logits, target));
        // BCE ~ 0, Dice = (2*2 + 1) / (2 + 2 + 1) = 1.
        assert!(got < 1e-6, "{got}");
    }

    #[test]
    fn ce_dice_by_hand() {
        // One image, 2 pixels, 3 classes; pixel 0 is class 2, pixel 1 class 0.
        let logits = t4(vec![1.0, 0.0, 0.0, 2.0, 3.0, 0.0], [1, 3, 1, 2]);
        let target = t3(vec![2.0, 0.0], [1, 1, 2]);
        let softmax = |v: [f64; 3]| {
            let e = v.map(f64::exp);
            let s: f64 = e.iter().sum();
            e.map(|x| x / s)
        };
        let p0 = softmax([1.0, 0.0, 3.0]);
        let p1 = softmax([0.0, 2.0, 0.0]);
        let ce = -(p0[2].ln() + p1[0].ln()) / 2.0;
        let t0 = [0.0, 0.0, 1.0];
        let t1 = [1.0, 0.0, 0.0];
        let mut dice = 0.0;
        for k in 0..3 {
            let i = p0[k] * t0[k] + p1[k] * t1[k];
            let z = p0[k] * p0[k] + p1[k] * p1[k];
            let y = t0[k] + t1[k];
            dice += 1.0 - (2.0 * i + 1e-5) / (z + y + 1e-5);
        }
        let want = 0.4 * ce + 0.6 * dice / 3.0;
        let got = scalar(ce_dice(logits, target));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn one_hot_marks_each_class() {
        let t = t3(vec![0.0, 2.0, 1.0, 2.0], [1, 2, 2]);
        let oh = one_hot(t, 3).into_data().to_vec::<f32>().unwrap();
        assert_eq!(oh, vec![1., 0., 0., 0., 0., 0., 1., 0., 0., 1., 0., 1.]);
    }
}
