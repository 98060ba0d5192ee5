//! The report as Markdown and as a DSC-against-latency chart.

use std::path::Path;

use vmunet_runtime::RuntimeKind;

use super::job::{ReportJob, ReportRow};
use crate::CompressError;

/// The CPU and core count, for the report's header.
pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

pub(super) fn markdown(
    rows: &[ReportRow],
    runtimes: &[RuntimeKind],
    size: usize,
    job: &ReportJob,
    machine: &str,
) -> String {
    let base = &rows[0];
    let mut s = format!(
        "# Compression report\n\n{} at {size}x{size}, scan `{}`; {} timed runs per model and runtime, {} thread(s); {machine}.\n\
         Metrics on the validation images of {} (each model in the runtime named); parity against fp32 on {} validation images.\n\n",
        job.checkpoint.display(),
        job.scan,
        job.runs,
        job.threads,
        job.data.display(),
        job.parity_images
    );
    s.push_str("| model | file MB | x fp32 | params | GMACs |");
    for rt in runtimes {
        s.push_str(&format!(" {} p50 ms | speed-up |", rt.as_str()));
    }
    s.push_str(" DSC | mIoU | Acc | Sen | Spe | max abs logit diff | mask agreement | mask Dice |\n|---|---|---|---|---|");
    for _ in runtimes {
        s.push_str("---|---|");
    }
    s.push_str("---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {} | {:.3} |",
            r.name,
            r.bytes as f64 / 1e6,
            r.bytes as f64 / base.bytes as f64,
            r.parameters,
            r.gmacs
        ));
        for (l, b) in r.latency.iter().zip(&base.latency) {
            s.push_str(&format!(" {:.1} | {:.2}x |", l.p50_ms, b.p50_ms / l.p50_ms));
        }
        s.push_str(&format!(
            " {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3e} | {:.4} | {:.4} |\n",
            r.dsc * 100.0,
            r.miou * 100.0,
            r.acc * 100.0,
            r.sen * 100.0,
            r.spe * 100.0,
            r.parity_max_abs_logit_diff,
            r.parity_mask_agreement,
            r.parity_mask_dice
        ));
    }
    s.push_str("\nMetrics computed in: ");
    s.push_str(
        &rows
            .iter()
            .map(|r| format!("{} ({})", r.name, r.metrics_runtime))
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.push('\n');
    s
}

pub(super) fn chart(
    rows: &[ReportRow],
    runtimes: &[RuntimeKind],
    path: &Path,
) -> Result<(), CompressError> {
    use vmunet_plot::{Panel, Series};
    const COLORS: [[u8; 3]; 2] = [[31, 119, 180], [214, 39, 40]];
    let series = runtimes
        .iter()
        .enumerate()
        .map(|(i, rt)| {
            Series::points(
                rt.as_str(),
                COLORS[i % 2],
                rows.iter()
                    .map(|r| (r.latency[i].p50_ms, r.dsc * 100.0))
                    .collect(),
                rows.iter().map(|r| r.name.clone()).collect(),
            )
        })
        .collect();
    vmunet_plot::save(
        &[Panel {
            title: "DSC against latency (p50)".into(),
            x_label: "latency per image (ms)".into(),
            y_label: "DSC (%)".into(),
            series,
        }],
        path,
    )?;
    Ok(())
}
