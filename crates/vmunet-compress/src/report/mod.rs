//! The compression report: every compressed form of a checkpoint measured side by side in one
//! run (size, parameters, multiply-adds, latency in tract and ONNX Runtime, the paper's
//! metrics, parity against float32), written as Markdown, JSON and a DSC-against-latency chart.

mod measure;
mod render;

use std::path::{Path, PathBuf};

use serde::Serialize;
use vmunet_data::Preprocess;
use vmunet_model::ModelSource;
use vmunet_onnx::{export_to_file, ExportRequest, ScanForm};
use vmunet_onnx_ir::Model;
use vmunet_runtime::RuntimeKind;
use vmunet_target::{Host, Int8Defaults, Int8Format, ProviderName};

use crate::{quantize, to_fp16, CalibrationSet, CompressError, Fp16Options, Int8Options, Method};

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

/// A model to measure.
pub(crate) struct Variant {
    pub name: &'static str,
    pub path: PathBuf,
    pub parameters: usize,
    /// The runtime the metrics are computed in.
    pub runtime: RuntimeKind,
}

/// Builds every compressed form of `job.checkpoint` (and `job.pruned`) into `job.out`, measures
/// them and writes `report.md`, `report.json` and `report.png` there. `progress` gets a line
/// per model measured (and one when ONNX Runtime is missing).
pub fn compression_report(
    job: &ReportJob,
    progress: &mut dyn FnMut(String),
) -> Result<CompressionReport, CompressError> {
    std::fs::create_dir_all(&job.out).map_err(vmunet_fs::FsError::at(&job.out))?;
    let ort = vmunet_runtime::ort_lib::locate(None).is_ok();
    let runtimes = if ort {
        vec![RuntimeKind::Tract, RuntimeKind::Ort]
    } else {
        progress("ONNX Runtime not found (ORT_DYLIB_PATH): tract only".to_string());
        vec![RuntimeKind::Tract]
    };
    let metric_rt = |format: Option<Int8Format>| match format {
        Some(Int8Format::QOperator) => RuntimeKind::Tract,
        _ if ort => RuntimeKind::Ort,
        _ => RuntimeKind::Tract,
    };
    let host = Host::this_machine();
    let fp32 = job.out.join("fp32.onnx");
    let (params, trained) = export(&job.checkpoint, &fp32, job.scan)?;
    let size = trained.unwrap_or(256);
    let pre = Preprocess {
        height: size,
        width: size,
        channels: 3,
    };
    let calib_dir = job
        .calib
        .clone()
        .unwrap_or_else(|| job.data.join("train/images"));
    let calib = CalibrationSet::from_dir(&calib_dir, job.calib_count, &pre)?;
    let int8 = |m: &Model, runtime: RuntimeKind| {
        let d = Int8Defaults::for_runtime(runtime, &[ProviderName::Cpu], host);
        let opts = Int8Options {
            format: d.format,
            method: job.method,
            activation_type: d.activations,
            reduce_range: d.reduce_range,
            ..Default::default()
        };
        quantize(m, &opts, Some(&calib)).map(|(q, _)| (q, d.format))
    };
    let base = read(&fp32)?;
    let mut variants = vec![Variant {
        name: "fp32",
        path: fp32.clone(),
        parameters: params,
        runtime: metric_rt(None),
    }];
    let (half, _) = to_fp16(&base, &Fp16Options::default(), &calib)?;
    variants.push(Variant {
        name: "fp16",
        path: write(&half, &job.out.join("fp16.onnx"))?,
        parameters: params,
        runtime: metric_rt(None),
    });
    let forms = [
        ("int8-qdq", "pruned-int8-qdq", RuntimeKind::Ort),
        (
            "int8-qoperator",
            "pruned-int8-qoperator",
            RuntimeKind::Tract,
        ),
    ];
    for (name, _, rt) in forms {
        let (q, format) = int8(&base, rt)?;
        variants.push(Variant {
            name,
            path: write(&q, &job.out.join(format!("{name}.onnx")))?,
            parameters: params,
            runtime: metric_rt(Some(format)),
        });
    }
    if let Some(pruned) = &job.pruned {
        let pp = job.out.join("pruned.onnx");
        let (pparams, _) = export(pruned, &pp, job.scan)?;
        let pbase = read(&pp)?;
        variants.push(Variant {
            name: "pruned",
            path: pp,
            parameters: pparams,
            runtime: metric_rt(None),
        });
        for (_, name, rt) in forms {
            let (q, format) = int8(&pbase, rt)?;
            variants.push(Variant {
                name,
                path: write(&q, &job.out.join(format!("{name}.onnx")))?,
                parameters: pparams,
                runtime: metric_rt(Some(format)),
            });
        }
    }
    let rows = measure::measure_all(job, &variants, &runtimes, &fp32, &pre, size, progress)?;
    let u8s8 = Int8Defaults::for_runtime(RuntimeKind::Ort, &[ProviderName::Cpu], host).reduce_range;
    let machine = render::machine();
    let json = serde_json::json!({
        "checkpoint": job.checkpoint.display().to_string(),
        "pruned": job.pruned.as_ref().map(|p| p.display().to_string()),
        "input_size": size,
        "scan": job.scan.to_string(),
        "threads": job.threads,
        "runs": job.runs,
        "calibration": format!("{} ({} images, {})", calib.source, calib.len(), job.method),
        "int8_qdq_activations": if u8s8 { "u8, 7-bit weights (x86 without VNNI)" } else { "s8" },
        "machine": machine,
        "rows": rows,
    });
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| CompressError::Unsupported(format!("cannot encode the report: {e}")))?;
    vmunet_fs::write_durable(&job.out.join("report.json"), text.as_bytes())?;
    let markdown = render::markdown(&rows, &runtimes, size, job, &machine);
    vmunet_fs::write_durable(&job.out.join("report.md"), markdown.as_bytes())?;
    render::chart(&rows, &runtimes, &job.out.join("report.png"))?;
    Ok(CompressionReport {
        rows,
        runtimes,
        size,
        markdown,
        out: job.out.clone(),
    })
}

/// Exports checkpoint `ck` in the `scan` form at the size it was trained at; returns its
/// parameters and training size.
fn export(ck: &Path, out: &Path, scan: ScanForm) -> Result<(usize, Option<usize>), CompressError> {
    use burn::module::Module;
    let loaded = ModelSource::Checkpoint(ck.to_path_buf()).load()?;
    let request = ExportRequest {
        size: Some(loaded.input_size().unwrap_or(256)),
        scan: Some(scan),
        ..Default::default()
    };
    export_to_file(&loaded, &request, None, out)?;
    Ok((loaded.model.num_params(), loaded.input_size()))
}

fn read(path: &Path) -> Result<Model, CompressError> {
    Ok(Model::read(path)?)
}

fn write(model: &Model, path: &Path) -> Result<PathBuf, CompressError> {
    model.write(path)?;
    Ok(path.to_path_buf())
}
