//! Synapse multi-organ evaluation as in the official `test_single_volume` /
//! `calculate_metric_percase` (utils.py) and `val_one_epoch`
//! (engine_synapse.py): per case and per organ label, Dice and HD95 with
//! medpy, then the mean over cases per organ and the mean over organs.

use serde::{Deserialize, Serialize};

use crate::surface::{check_shape, dice, hd95};
use crate::MetricsError;

/// Organ names of the 8 Synapse labels 1..=8, in label order (TransUNet's
/// preprocessed data as reported by TransUNet and VM-UNet tables).
pub const SYNAPSE_ORGANS: [&str; 8] = [
    "aorta",
    "gallbladder",
    "kidney_l",
    "kidney_r",
    "liver",
    "pancreas",
    "spleen",
    "stomach",
];

/// Number of classes of the Synapse setup (background plus 8 organs).
pub const SYNAPSE_NUM_CLASSES: usize = 9;

/// Official per-case metric for one binarised organ: `(dice, hd95)` if both
/// masks have foreground, `(1, 0)` if only `pred` has, `(0, 0)` otherwise
/// (pred empty, whether or not gt is).
pub fn calculate_metric_percase(
    pred: &[bool],
    gt: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<(f64, f64), MetricsError> {
    check_shape(shape, "pred", pred.len())?;
    check_shape(shape, "gt", gt.len())?;
    let pred_any = pred.iter().any(|&x| x);
    let gt_any = gt.iter().any(|&x| x);
    match (pred_any, gt_any) {
        (true, true) => Ok((dice(pred, gt)?, hd95(pred, gt, shape, spacing)?)),
        (true, false) => Ok((1.0, 0.0)),
        (false, _) => Ok((0.0, 0.0)),
    }
}

/// [`calculate_metric_percase`] for label `class` of two label maps
/// (`pred == class`, `gt == class`), unit voxel spacing.
pub fn case_metrics(
    pred: &[u8],
    gt: &[u8],
    shape: &[usize],
    class: u8,
) -> Result<(f64, f64), MetricsError> {
    case_metrics_with_spacing(pred, gt, shape, class, None)
}

/// [`case_metrics`] with an optional voxel spacing per axis.
pub fn case_metrics_with_spacing(
    pred: &[u8],
    gt: &[u8],
    shape: &[usize],
    class: u8,
    spacing: Option<&[f64]>,
) -> Result<(f64, f64), MetricsError> {
    check_shape(shape, "pred", pred.len())?;
    check_shape(shape, "gt", gt.len())?;
    let p: Vec<bool> = pred.iter().map(|&x| x == class).collect();
    let g: Vec<bool> = gt.iter().map(|&x| x == class).collect();
    calculate_metric_percase(&p, &g, shape, spacing)
}

/// Display name of label `class`: the Synapse organ name when
/// `num_classes == 9`, otherwise `class_<n>`.
pub fn class_name(class: u8, num_classes: usize) -> String {
    match class {
        1..=8 if num_classes == SYNAPSE_NUM_CLASSES => {
            SYNAPSE_ORGANS[usize::from(class) - 1].into()
        }
        _ => format!("class_{class}"),
    }
}

/// Metrics of one evaluated case (volume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMetrics {
    /// Case name (e.g. `case0008`).
    pub name: String,
    /// Dice per label; index `i` holds label `i + 1`.
    pub dice: Vec<f64>,
    /// HD95 per label; index `i` holds label `i + 1`.
    pub hd95: Vec<f64>,
    /// Mean Dice over labels for this case (the official per-case log line).
    pub mean_dice: f64,
    /// Mean HD95 over labels for this case.
    pub mean_hd95: f64,
}

/// Mean metrics of one organ label over all cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganSummary {
    /// Label value (1-based).
    pub class: u8,
    /// Organ name, see [`class_name`].
    pub name: String,
    /// Mean Dice over cases.
    pub mean_dice: f64,
    /// Mean HD95 over cases.
    pub mean_hd95: f64,
}

/// Summary of a Synapse evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynapseSummary {
    /// Number of classes including background.
    pub num_classes: usize,
    /// Number of cases accumulated.
    pub num_cases: usize,
    /// Per-organ means over cases, labels `1..num_classes`.
    pub organs: Vec<OrganSummary>,
    /// Mean over organs of the per-organ mean Dice (0 with no cases).
    pub mean_dice: f64,
    /// Mean over organs of the per-organ mean HD95 (0 with no cases).
    pub mean_hd95: f64,
    /// Per-case rows in insertion order.
    pub cases: Vec<CaseMetrics>,
}

/// Accumulates per-case, per-organ Dice and HD95 over a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct SynapseMetrics {
    num_classes: usize,
    cases: Vec<CaseMetrics>,
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        0.0
    } else {
        values.sum::<f64>() / n as f64
    }
}

impl SynapseMetrics {
    /// New accumulator for `num_classes` classes including background
    /// (9 for Synapse); labels `1..num_classes` are evaluated.
    pub fn new(num_classes: usize) -> Result<Self, MetricsError> {
        if !(2..=256).contains(&num_classes) {
            return Err(MetricsError::InvalidNumClasses(num_classes));
        }
        Ok(Self {
            num_classes,
            cases: Vec::new(),
        })
    }

    /// Number of classes including background.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Cases accumulated so far.
    pub fn cases(&self) -> &[CaseMetrics] {
        &self.cases
    }

    /// Evaluates one case (label maps of `shape`, unit spacing as in the
    /// official test) for every label `1..num_classes`.
    pub fn add_case(
        &mut self,
        name: &str,
        pred: &[u8],
        gt: &[u8],
        shape: &[usize],
    ) -> Result<(), MetricsError> {
        self.add_case_with_spacing(name, pred, gt, shape, None)
    }

    /// [`Self::add_case`] with an optional voxel spacing per axis. On error
    /// nothing is recorded.
    pub fn add_case_with_spacing(
        &mut self,
        name: &str,
        pred: &[u8],
        gt: &[u8],
        shape: &[usize],
        spacing: Option<&[f64]>,
    ) -> Result<(), MetricsError> {
        check_shape(shape, "pred", pred.len())?;
        check_shape(shape, "gt", gt.len())?;
        let labels = self.num_classes - 1;
        let mut dices = Vec::with_capacity(labels);
        let mut hds = Vec::with_capacity(labels);
        for class in 1..self.num_classes {
            // num_classes <= 256, so every evaluated label fits in a u8.
            let class = u8::try_from(class)
                .map_err(|_| MetricsError::InvalidNumClasses(self.num_classes))?;
            let (d, h) = case_metrics_with_spacing(pred, gt, shape, class, spacing)?;
            dices.push(d);
            hds.push(h);
        }
        self.cases.push(CaseMetrics {
            name: name.to_owned(),
            mean_dice: mean(dices.iter().copied()),
            mean_hd95: mean(hds.iter().copied()),
            dice: dices,
            hd95: hds,
        });
        Ok(())
    }

    /// Per-organ means over cases, then their mean over organs, as the
    /// official `val_one_epoch` reports.
    pub fn summary(&self) -> SynapseSummary {
        let organs: Vec<OrganSummary> = (1..self.num_classes)
            .filter_map(|c| u8::try_from(c).ok())
            .map(|class| {
                let i = usize::from(class) - 1;
                OrganSummary {
                    class,
                    name: class_name(class, self.num_classes),
                    mean_dice: mean(self.cases.iter().map(|c| c.dice[i])),
                    mean_hd95: mean(self.cases.iter().map(|c| c.hd95[i])),
                }
            })
            .collect();
        let (mean_dice, mean_hd95) = if self.cases.is_empty() {
            (0.0, 0.0)
        } else {
            (
                mean(organs.iter().map(|o| o.mean_dice)),
                mean(organs.iter().map(|o| o.mean_hd95)),
            )
        };
        SynapseSummary {
            num_classes: self.num_classes,
            num_cases: self.cases.len(),
            organs,
            mean_dice,
            mean_hd95,
            cases: self.cases.clone(),
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
    fn percase_conventions() {
        let shape = [1, 4];
        // pred present, gt empty -> (1, 0).
        assert_eq!(
            case_metrics(&[0, 2, 0, 0], &[0, 0, 0, 0], &shape, 2).unwrap(),
            (1.0, 0.0)
        );
        // pred empty, gt present -> (0, 0).
        assert_eq!(
            case_metrics(&[0, 0, 0, 0], &[0, 2, 0, 0], &shape, 2).unwrap(),
            (0.0, 0.0)
        );
        // both empty -> (0, 0).
        assert_eq!(
            case_metrics(&[1, 1, 0, 0], &[1, 0, 0, 0], &shape, 2).unwrap(),
            (0.0, 0.0)
        );
        // Other labels are background for this class.
        assert_eq!(
            case_metrics(&[2, 2, 2, 2], &[2, 2, 2, 2], &shape, 2).unwrap(),
            (1.0, 0.0)
        );
        assert!(matches!(
            case_metrics(&[0, 0, 0], &[0, 0, 0, 0], &shape, 1),
            Err(MetricsError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn percase_both_present() {
        // pred {0}, gt {0,1} in a 1x4 row: dice 2*1/3. Every pixel is
        // surface; A->B = [0], B->A = [0,1] -> sorted [0,0,1], index 1.9 -> 0.9
        // (medpy 0.5.2: 0.8999999999999999).
        let (d, h) = case_metrics(&[1, 0, 2, 0], &[1, 1, 2, 0], &[1, 4], 1).unwrap();
        close(d, 2.0 / 3.0);
        close(h, 0.9);
    }

    #[test]
    fn accumulator_means_over_cases_then_organs() {
        let mut m = SynapseMetrics::new(3).unwrap();
        let shape = [1, 4];
        // case a: class 1 -> (2/3, 0.9) (see percase_both_present),
        //         class 2 -> identical single pixels -> (1, 0).
        m.add_case("a", &[1, 0, 2, 0], &[1, 1, 2, 0], &shape)
            .unwrap();
        // case b: class 1 pred only -> (1, 0); class 2 absent -> (0, 0).
        m.add_case("b", &[1, 0, 0, 0], &[0, 0, 0, 0], &shape)
            .unwrap();
        assert!(m.add_case("bad", &[0; 3], &[0; 4], &shape).is_err());
        assert_eq!(m.cases().len(), 2);

        let s = m.summary();
        assert_eq!((s.num_classes, s.num_cases), (3, 2));
        assert_eq!(s.organs.len(), 2);
        assert_eq!(
            (s.organs[0].class, s.organs[0].name.as_str()),
            (1, "class_1")
        );
        // class 1: dice (2/3 + 1)/2 = 5/6, hd95 (0.9 + 0)/2 = 0.45.
        close(s.organs[0].mean_dice, 5.0 / 6.0);
        close(s.organs[0].mean_hd95, 0.45);
        // class 2: dice (1 + 0)/2 = 0.5, hd95 0.
        close(s.organs[1].mean_dice, 0.5);
        close(s.organs[1].mean_hd95, 0.0);
        // overall: (5/6 + 1/2)/2 = 2/3, (0.45 + 0)/2 = 0.225.
        close(s.mean_dice, 2.0 / 3.0);
        close(s.mean_hd95, 0.225);
        // per-case rows: case a mean over classes (2/3+1)/2, (0.9+0)/2.
        assert_eq!(s.cases[0].name, "a");
        close(s.cases[0].mean_dice, 5.0 / 6.0);
        close(s.cases[0].mean_hd95, 0.45);
        assert_eq!(s.cases[1].dice, vec![1.0, 0.0]);
        assert_eq!(s.cases[1].hd95, vec![0.0, 0.0]);
    }

    #[test]
    fn empty_accumulator_and_bad_class_count() {
        let s = SynapseMetrics::new(SYNAPSE_NUM_CLASSES).unwrap().summary();
        assert_eq!(s.num_cases, 0);
        assert_eq!((s.mean_dice, s.mean_hd95), (0.0, 0.0));
        assert_eq!(s.organs.len(), 8);
        assert_eq!(s.organs[0].name, "aorta");
        assert_eq!(s.organs[7].name, "stomach");
        assert_eq!(
            SynapseMetrics::new(1),
            Err(MetricsError::InvalidNumClasses(1))
        );
        assert_eq!(
            SynapseMetrics::new(257),
            Err(MetricsError::InvalidNumClasses(257))
        );
        assert!(SynapseMetrics::new(256).is_ok());
    }

    #[test]
    fn organ_names_follow_synapse_label_order() {
        let names: Vec<String> = (1..=8)
            .map(|c| class_name(c, SYNAPSE_NUM_CLASSES))
            .collect();
        assert_eq!(
            names,
            [
                "aorta",
                "gallbladder",
                "kidney_l",
                "kidney_r",
                "liver",
                "pancreas",
                "spleen",
                "stomach"
            ]
        );
        assert_eq!(class_name(3, 4), "class_3");
    }
}
