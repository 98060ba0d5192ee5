//! What the report is asked to do and what it measured.

use std::path::PathBuf;

use serde::Serialize;
use vmunet_onnx::ScanForm;
use vmunet_runtime::RuntimeKind;

use crate::Method;

/// What to measure (usable as command-line arguments with the `clap` feature).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReportJob {
    /// The trained checkpoint (float32 reference).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub checkpoint: PathBuf,
    /// Its pruned (and fine-tuned) checkpoint, from `vmunet compress prune`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub pruned: Option<PathBuf>,
    /// Dataset (ISIC layout): metrics on val/, calibration on train/images unless --calib.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub data: PathBuf,
    /// Calibration images for int8 (default: DATA/train/images).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub calib: Option<PathBuf>,
    /// Calibration images used.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub calib_count: usize,
    /// int8 calibration method.
    #[cfg_attr(feature = "clap", arg(long, default_value = "minmax"))]
    pub method: Method,
    /// Scan form of the exports.
    #[cfg_attr(feature = "clap", arg(long, default_value = "custom"))]
    pub scan: ScanForm,
    /// Output folder: the models, report.md, report.json, report.png.
    #[cfg_attr(feature = "clap", arg(long, default_value = "compress-report"))]
    pub out: PathBuf,
    /// Timed runs per model and runtime (after 3 warm-up runs).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub runs: usize,
    /// Threads of each runtime (default: 1, the steadiest comparison).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub threads: usize,
    /// Validation images for the metrics (default: all).
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_images: Option<usize>,
    /// Validation images for parity against float32.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16))]
    pub parity_images: usize,
}

/// One runtime's latency for a model.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// `tract` or `ort`.
    pub runtime: String,
    /// Median ms per forward.
    pub p50_ms: f64,
    /// 95th percentile ms per forward.
    pub p95_ms: f64,
}

/// One model of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    /// `fp32`, `fp16`, `int8-qdq`, `pruned`, ...
    pub name: String,
    /// The ONNX file.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Parameters of the model it came from.
    pub parameters: usize,
    /// Multiply-adds per forward, billions.
    pub gmacs: f64,
    /// Latency per runtime.
    pub latency: Vec<Latency>,
    /// The runtime the metrics were computed in.
    pub metrics_runtime: String,
    /// Validation images scored.
    pub images: usize,
    /// Dice (fraction).
    pub dsc: f64,
    /// Foreground IoU.
    pub miou: f64,
    /// Accuracy.
    pub acc: f64,
    /// Sensitivity.
    pub sen: f64,
    /// Specificity.
    pub spe: f64,
    /// Largest |logit difference| against float32 in the same runtime.
    pub parity_max_abs_logit_diff: f64,
    /// Fraction of mask pixels equal to float32's.
    pub parity_mask_agreement: f64,
    /// Dice between its masks and float32's.
    pub parity_mask_dice: f64,
}

/// What [`compression_report`] measured and wrote.
#[derive(Debug, Clone)]
pub struct CompressionReport {
    /// One row per model, float32 first.
    pub rows: Vec<ReportRow>,
    /// The runtimes timed.
    pub runtimes: Vec<RuntimeKind>,
    /// Input size of the exports.
    pub size: usize,
    /// The report as Markdown (also in `out/report.md`).
    pub markdown: String,
    /// The output folder.
    pub out: PathBuf,
}
