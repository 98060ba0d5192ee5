//! ISIC-style binary metrics from one confusion matrix pooled over every
//! test pixel, as in `val_one_epoch` / `test_one_epoch` of the official
//! `engine.py`.

use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// Threshold used by the official code for both predictions
/// (`config.threshold`) and ground truth.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// Pixel counts of a binary confusion matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Confusion {
    /// Predicted foreground, truly foreground.
    pub tp: u64,
    /// Predicted foreground, truly background.
    pub fp: u64,
    /// Predicted background, truly background.
    pub tn: u64,
    /// Predicted background, truly foreground.
    pub fn_: u64,
}

/// Metrics derived from a [`Confusion`], all as fractions in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Foreground IoU, `TP / (TP + FP + FN)` (the official "miou").
    pub miou: f64,
    /// Dice / F1, `2TP / (2TP + FP + FN)`.
    pub dsc: f64,
    /// Accuracy, `(TP + TN) / total`.
    pub acc: f64,
    /// Sensitivity (recall), `TP / (TP + FN)`.
    pub sen: f64,
    /// Specificity, `TN / (TN + FP)`.
    pub spe: f64,
}

/// `num / den`, or 0 when the denominator is 0 (the official convention).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Confusion {
    /// Accumulates pixels with the official threshold of 0.5 on both inputs.
    ///
    /// `probs` are predicted foreground probabilities, `target` the ground
    /// truth mask (foreground where `>= 0.5`).
    pub fn add(&mut self, probs: &[f32], target: &[f32]) -> Result<(), MetricsError> {
        self.add_with_threshold(probs, target, DEFAULT_THRESHOLD)
    }

    /// Accumulates pixels: prediction is `prob >= threshold`, truth is
    /// `target >= 0.5`. NaN probabilities count as background, as in numpy.
    pub fn add_with_threshold(
        &mut self,
        probs: &[f32],
        target: &[f32],
        threshold: f32,
    ) -> Result<(), MetricsError> {
        if probs.len() != target.len() {
            return Err(MetricsError::LengthMismatch {
                left: "probs",
                left_len: probs.len(),
                right: "target",
                right_len: target.len(),
            });
        }
        for (&p, &t) in probs.iter().zip(target) {
            let pred = p >= threshold;
            let truth = t >= 0.5;
            match (pred, truth) {
                (true, true) => self.tp += 1,
                (true, false) => self.fp += 1,
                (false, false) => self.tn += 1,
                (false, true) => self.fn_ += 1,
            }
        }
        Ok(())
    }

    /// Adds the counts of another confusion matrix to this one.
    pub fn merge(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.tn += other.tn;
        self.fn_ += other.fn_;
    }

    /// Total number of pixels counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Official metrics; every ratio with a zero denominator is 0.
    pub fn metrics(&self) -> BinaryMetrics {
        let Confusion { tp, fp, tn, fn_ } = *self;
        BinaryMetrics {
            miou: ratio(tp, tp + fp + fn_),
            dsc: ratio(2 * tp, 2 * tp + fp + fn_),
            acc: ratio(tp + tn, self.total()),
            sen: ratio(tp, tp + fn_),
            spe: ratio(tn, tn + fp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed_confusion_and_metrics() {
        // pred (>= 0.5): 1 1 1 0 0 1 0 0 1 0
        // truth(>= 0.5): 1 1 1 1 0 0 0 1 1 0
        // TP = {0,1,2,8} = 4, FP = {5} = 1, FN = {3,7} = 2, TN = {4,6,9} = 3.
        let probs = [0.9, 0.8, 0.5, 0.3, 0.2, 0.7, 0.1, 0.49, 0.95, 0.05];
        let target = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let mut c = Confusion::default();
        c.add(&probs, &target).unwrap();
        assert_eq!(
            c,
            Confusion {
                tp: 4,
                fp: 1,
                tn: 3,
                fn_: 2
            }
        );
        let m = c.metrics();
        close(m.acc, 7.0 / 10.0);
        close(m.sen, 4.0 / 6.0);
        close(m.spe, 3.0 / 4.0);
        close(m.dsc, 8.0 / 11.0);
        close(m.miou, 4.0 / 7.0);
    }

    #[test]
    fn threshold_is_inclusive_and_target_cut_at_half() {
        let mut c = Confusion::default();
        // prob exactly 0.5 -> foreground; target exactly 0.5 -> foreground.
        c.add(&[0.5, 0.4999], &[0.5, 0.4999]).unwrap();
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 0, 1, 0));
        let mut d = Confusion::default();
        d.add_with_threshold(&[0.5, 0.7, f32::NAN], &[1.0, 1.0, 1.0], 0.6)
            .unwrap();
        assert_eq!((d.tp, d.fp, d.tn, d.fn_), (1, 0, 0, 2));
    }

    #[test]
    fn zero_denominators_give_zero() {
        let m = Confusion::default().metrics();
        assert_eq!(
            (m.miou, m.dsc, m.acc, m.sen, m.spe),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );

        // Only true negatives: sen, dsc, miou have zero denominators.
        let only_tn = Confusion {
            tn: 5,
            ..Default::default()
        };
        let m = only_tn.metrics();
        assert_eq!(
            (m.miou, m.dsc, m.acc, m.sen, m.spe),
            (0.0, 0.0, 1.0, 0.0, 1.0)
        );

        // Only true positives: spe has a zero denominator.
        let only_tp = Confusion {
            tp: 3,
            ..Default::default()
        };
        let m = only_tp.metrics();
        assert_eq!(
            (m.miou, m.dsc, m.acc, m.sen, m.spe),
            (1.0, 1.0, 1.0, 1.0, 0.0)
        );
    }

    #[test]
    fn merge_equals_pooled_add() {
        let (p1, t1) = ([0.9f32, 0.1, 0.6], [1.0f32, 1.0, 0.0]);
        let (p2, t2) = ([0.2f32, 0.8], [0.0f32, 1.0]);
        let mut a = Confusion::default();
        a.add(&p1, &t1).unwrap();
        let mut b = Confusion::default();
        b.add(&p2, &t2).unwrap();
        a.merge(&b);
        let mut pooled = Confusion::default();
        pooled
            .add(
                &[p1.as_slice(), &p2].concat(),
                &[t1.as_slice(), &t2].concat(),
            )
            .unwrap();
        assert_eq!(a, pooled);
        assert_eq!(a.total(), 5);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut c = Confusion::default();
        let err = c.add(&[0.1, 0.2], &[1.0]).unwrap_err();
        assert!(matches!(err, MetricsError::LengthMismatch { .. }));
        assert_eq!(c, Confusion::default());
    }
}
