//! `vmunet bench`: forward latency, throughput and peak memory, as a table and JSON. The
//! measuring is `vmunet_bench`'s; this file parses and prints.

use std::path::PathBuf;

use anyhow::Result;
use vmunet_bench::{BenchOptions, Peer};

use crate::args::EngineArgs;

/// Arguments of `vmunet bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Input size (H = W; default: the profile's, else the model's, else 256).
    #[arg(long)]
    size: Option<usize>,
    /// Batch size (default: the profile's, else 1).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Export every scan formulation of the checkpoint / preset and time each in tract and
    /// ONNX Runtime, beside burn.
    #[arg(long, conflicts_with_all = ["model", "profile", "runtime"])]
    all: bool,
    /// Export and time only these scan formulations (`scan`, `chunked`, `custom`; repeatable).
    #[arg(long, value_name = "FORM", conflicts_with_all = ["model", "profile", "runtime", "all"])]
    form: Vec<vmunet_onnx_ir::ScanForm>,
    /// Also time the scan kernel alone at the model's stage shapes: ns per state update and
    /// the fraction of its arithmetic bound, and its share of a forward.
    #[arg(long)]
    kernel: bool,
    /// Also time every node (tract's plan, ONNX Runtime's profiler) and print where the forward
    /// goes, per operator type.
    #[arg(long)]
    by_op: bool,
    /// The official PyTorch model's timings from the same run (`tests/bench_peer.py --out`):
    /// adds "vs PyTorch" ratios. Without it no ratio is printed.
    #[arg(long, value_name = "FILE")]
    peer: Option<PathBuf>,
    /// Chunk length of the chunked formulation (with --all).
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// CPU threads for ONNX Runtime's intra-op pool, tract's matrix products and vmunet's
    /// kernels (default: all cores for ONNX Runtime and the kernels, one for tract).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `vmunet bench`.
pub fn run(a: Args) -> Result<()> {
    if let Some(t) = a.threads {
        vmunet_bench::use_threads(t)?;
    }
    let opts = BenchOptions {
        size: a.size,
        batch: a.batch,
        runs: a.runs,
        warmup: a.warmup,
        threads: a.threads,
        kernel: a.kernel,
        by_op: a.by_op,
        peer: a.peer.as_deref().map(Peer::read).transpose()?,
    };
    let mut progress = |line: String| eprintln!("{line}");
    let report = match &a.engine.model {
        Some(path) => vmunet_bench::bench_model(
            path,
            &a.engine.session_options(a.threads)?,
            &opts,
            &mut progress,
        )?,
        #[cfg(feature = "full")]
        None => {
            let forms = if a.all {
                vmunet_onnx_ir::ScanForm::ALL.to_vec()
            } else {
                a.form.clone()
            };
            let loaded = a.engine.source.load()?;
            vmunet_bench::bench_loaded(loaded, &forms, a.chunk, &opts, &mut progress)?
        }
        #[cfg(not(feature = "full"))]
        None => anyhow::bail!("give --model FILE.onnx (this build runs exported models only)"),
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", report.text());
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        vmunet_data::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}
