//! `vmunet bench`: forward latency and peak memory on the CPU backend.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use vmunet_model::CpuBackend;

use crate::util::{group, peak_rss_bytes, ModelSource};

/// Official PyTorch eager forward, paper size, 1x3x256x256, 2 threads, same machine class
/// (fixture README): the reference the ratios are computed against.
const PYTORCH_PAPER_SECONDS: f64 = 38.9;

/// Arguments of `vmunet bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: ModelSource,
    /// Input size (H = W).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Time an exported ONNX model instead of the burn model.
    #[arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])]
    model: Option<PathBuf>,
    /// Runtime for --model.
    #[arg(long, default_value = "tract", requires = "model")]
    runtime: vmunet_runtime::RuntimeKind,
}

/// The benchmark table: one row, timings from sorted `times`.
fn print_table(label: &str, times: &[f64], batch: usize, rss: Option<u64>, ratio: &str) {
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!("| runtime | runs | min s | p50 s | p95 s | images/s | peak RSS MB | vs PyTorch eager (38.9 s) |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {} | {ratio} |",
        times.len(),
        times[0],
        pct(0.5),
        pct(0.95),
        batch as f64 / pct(0.5),
        rss.map_or("?".into(), |b| format!("{:.0}", b as f64 / 1e6)),
    );
}

/// Warm-up, then timed runs; sorted seconds.
fn time_runs(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn bench_model(a: &Args, path: &std::path::Path) -> Result<()> {
    let mut rt = vmunet_runtime::open(a.runtime, path)?;
    let file = vmunet_runtime::ModelFile::read(path)?;
    let c = match file.input.dims.get(1) {
        Some(vmunet_runtime::ModelDim::Fixed(c)) => *c,
        _ => 3,
    };
    let shape = vec![a.batch, c, a.size, a.size];
    let n: usize = shape.iter().product();
    let input = vmunet_data::Array {
        shape: shape.clone(),
        data: (0..n).map(|i| ((i * 7919) % 256) as f32).collect(),
    };
    let times = time_runs(a.warmup, a.runs, || {
        rt.run(&input).map(|_| ()).map_err(Into::into)
    })?;
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let rss = peak_rss_bytes();
    println!(
        "vmunet bench: {} with {}, input {:?}",
        path.display(),
        rt.description(),
        shape
    );
    let ratio = format!("{:.3}x", pct(0.5) / PYTORCH_PAPER_SECONDS);
    print_table(&rt.description(), &times, a.batch, rss, &ratio);
    if let Some(j) = &a.json {
        let v = serde_json::json!({
            "model": path.display().to_string(), "runtime": rt.description(), "input": shape,
            "runs_s": times, "p50_s": pct(0.5), "p95_s": pct(0.95), "peak_rss_bytes": rss,
            "pytorch_reference_s": PYTORCH_PAPER_SECONDS,
        });
        vmunet_data::write_atomic(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    if let Some(m) = a.model.clone() {
        return bench_model(&a, &m);
    }
    let loaded = a.source.load()?;
    let c = loaded.config.input_channels;
    let shape = [a.batch, c, a.size, a.size];
    loaded.model.check_input(shape)?;
    let device = Default::default();
    let x = Tensor::<CpuBackend, 4>::random(shape, Distribution::Uniform(0.0, 255.0), &device);
    let times = time_runs(a.warmup, a.runs, || {
        let _ = loaded.model.forward(x.clone())?.into_data();
        Ok(())
    })?;
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (p50, p95, min) = (pct(0.5), pct(0.95), times[0]);
    let rss = peak_rss_bytes();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let params = loaded.model.num_params();
    let paper = loaded.config == vmunet_model::VmUnetConfig::paper(loaded.config.num_classes);
    println!(
        "vmunet bench: {} ({} parameters), input {:?}, {} threads available",
        loaded.label,
        group(params),
        shape,
        threads
    );
    let ratio = if paper && a.size == 256 && a.batch == 1 {
        format!(
            "{:.3}x ({:.0}x faster)",
            p50 / PYTORCH_PAPER_SECONDS,
            PYTORCH_PAPER_SECONDS / p50
        )
    } else {
        "n/a (not the reference shape)".into()
    };
    print_table("burn-ndarray + vmunet-scan", &times, a.batch, rss, &ratio);
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "model": loaded.label, "parameters": params, "input": shape, "threads": threads,
            "runs_s": times, "min_s": min, "p50_s": p50, "p95_s": p95,
            "images_per_s": a.batch as f64 / p50, "peak_rss_bytes": rss,
            "pytorch_reference_s": PYTORCH_PAPER_SECONDS,
            "ratio_vs_pytorch": if paper && a.size == 256 && a.batch == 1 { Some(p50 / PYTORCH_PAPER_SECONDS) } else { None },
        });
        vmunet_data::write_atomic(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
