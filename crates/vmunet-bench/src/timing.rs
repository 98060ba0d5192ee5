//! Timing one configuration: warm-up, timed runs, peak memory; and time per operator type.

use std::path::Path;
use std::time::Instant;

use vmunet_data::Array;
use vmunet_runtime::{OpProfile, Runtime, RuntimeKind, Session, SessionOptions};

use crate::{BenchError, BenchOptions};

/// One timed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What ran it (`tract (CPU, 2 threads)`, `onnxruntime (CPU); ...`, `burn ...`).
    pub runtime: String,
    /// Execution provider.
    pub provider: &'static str,
    /// Scan formulation (`custom`, `chunked (64)`, ...).
    pub scan: String,
    /// Seconds per run, sorted.
    pub times: Vec<f64>,
    /// Peak resident set size meanwhile, bytes (Linux).
    pub rss: Option<u64>,
}

impl Row {
    /// The `q` quantile of the run times (0.5: median).
    pub fn pct(&self, q: f64) -> f64 {
        self.times[((self.times.len() - 1) as f64 * q).round() as usize]
    }
}

/// A deterministic input of `shape` in the preprocessed range.
pub(crate) fn input(shape: &[usize]) -> Array {
    let n: usize = shape.iter().product();
    Array {
        shape: shape.to_vec(),
        data: (0..n).map(|i| ((i * 7919) % 256) as f32).collect(),
    }
}

/// Peak resident set size of this process in bytes (Linux), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the kernel's peak-RSS counter so each row reports its own peak (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Warm-up, then timed runs; sorted seconds and the peak RSS meanwhile.
pub(crate) fn time(
    rt: &mut dyn Runtime,
    input: &Array,
    scan: &str,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(String),
) -> Result<Row, BenchError> {
    reset_peak_rss();
    for _ in 0..opts.warmup {
        rt.run(input)?;
    }
    let mut times = Vec::with_capacity(opts.runs.max(1));
    for _ in 0..opts.runs.max(1) {
        let t0 = Instant::now();
        rt.run(input)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let row = Row {
        runtime: rt.description(),
        provider: rt.provider(),
        scan: scan.into(),
        times,
        rss: peak_rss_bytes(),
    };
    progress(format!(
        "  {} [{}]: p50 {:.3} s",
        row.runtime,
        row.scan,
        row.pct(0.5)
    ));
    Ok(row)
}

/// Profiles `path` per operator type in tract (`opts.threads`, else one) and ONNX Runtime
/// (skipped with a note when it cannot run), each in a session of its own.
pub(crate) fn profile_ops(
    path: &Path,
    x: &Array,
    label: &str,
    opts: &BenchOptions,
    out: &mut Vec<(String, OpProfile)>,
    progress: &mut dyn FnMut(String),
) -> Result<(), BenchError> {
    let runs = opts.runs.clamp(1, 3);
    let open = |runtime, threads, op_profile| {
        Session::open(
            path,
            &SessionOptions {
                runtime: Some(runtime),
                threads,
                op_profile,
                ..Default::default()
            },
        )
    };
    let mut tract = open(RuntimeKind::Tract, Some(opts.threads.unwrap_or(1)), false)?;
    out.push((format!("tract [{label}]"), tract.op_profile(x, runs)?));
    drop(tract);
    match open(RuntimeKind::Ort, opts.threads, true).and_then(|mut s| s.op_profile(x, runs)) {
        Ok(p) => out.push((format!("onnxruntime [{label}]"), p)),
        Err(e) => progress(format!("  onnxruntime profile skipped: {e}")),
    }
    Ok(())
}
