//! The compression report: every compressed form of a checkpoint measured side by side in one
//! run (size, parameters, multiply-adds, latency in tract and ONNX Runtime, the paper's
//! metrics, parity against float32), written as Markdown, JSON and a DSC-against-latency chart.

mod job;
mod measure;
mod render;
mod variants;

use vmunet_data::Preprocess;
use vmunet_runtime::RuntimeKind;
use vmunet_target::{Host, Int8Defaults, ProviderName};

use crate::{CalibrationSet, CompressError};
use variants::{export, Variants};

pub use job::{CompressionReport, Latency, ReportJob, ReportRow};

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
    let variants = Variants {
        job,
        calib: &calib,
        host,
        ort,
    }
    .build(&fp32, params)?;
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
