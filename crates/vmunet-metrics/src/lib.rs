//! Evaluation metrics of the official VM-UNet code (JCruan519/VM-UNet).
//!
//! * [`Confusion`] / [`BinaryMetrics`]: ISIC17/18 metrics (mIoU, DSC,
//!   accuracy, sensitivity, specificity) from one confusion matrix pooled
//!   over every test pixel, thresholds 0.5, as in `engine.py`.
//! * [`dice`], [`hd95`], [`calculate_metric_percase`], [`SynapseMetrics`]:
//!   Synapse per-case, per-organ Dice and HD95 with medpy conventions, as in
//!   `utils.py` (`test_single_volume`, `calculate_metric_percase`) and
//!   `engine_synapse.py`. HD95 uses an exact separable Euclidean distance
//!   transform ([`edt_squared`]) restricted to the objects' bounding box.

#![deny(missing_docs)]

mod binary;
mod error;
mod surface;
mod synapse;

pub use binary::{BinaryMetrics, Confusion, DEFAULT_THRESHOLD};
pub use error::MetricsError;
pub use surface::{dice, edt_squared, hd95, percentile_linear, surface_distances, surface_voxels};
pub use synapse::{
    calculate_metric_percase, case_metrics, case_metrics_with_spacing, class_name, CaseMetrics,
    OrganSummary, SynapseMetrics, SynapseSummary, SYNAPSE_NUM_CLASSES, SYNAPSE_ORGANS,
};
