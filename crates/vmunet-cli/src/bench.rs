//! `vmunet bench`: forward latency, throughput and peak memory, as a table and JSON. With
//! `--all`, every scan formulation is exported and timed in every available runtime, beside
//! burn and the official PyTorch figure, in one run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
#[cfg(feature = "full")]
use burn::module::Module;
use vmunet_data::Array;
#[cfg(feature = "full")]
use vmunet_onnx::{export, write, ExportOptions, ScanForm};
#[cfg(feature = "full")]
use vmunet_runtime::BurnRuntime;
use vmunet_runtime::Runtime;

#[cfg(feature = "full")]
use crate::source::group;
use crate::util::{peak_rss_bytes, scan_form_label, EngineArgs};

/// Official PyTorch eager forward, paper size, 1x3x256x256, 2 threads, same machine class
/// (fixture README): the reference the ratios are computed against.
const PYTORCH_PAPER_SECONDS: f64 = 38.9;

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
    /// Chunk length of the chunked formulation (with --all).
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// CPU threads for ONNX Runtime's intra-op pool, tract's matrix products and vmunet's
    /// kernels (default: all cores for ONNX Runtime and the kernels, one for tract).
    #[arg(long)]
    threads: Option<usize>,
}

/// One timed configuration.
struct Row {
    runtime: String,
    provider: &'static str,
    scan: String,
    times: Vec<f64>,
    rss: Option<u64>,
}

impl Row {
    fn pct(&self, q: f64) -> f64 {
        self.times[((self.times.len() - 1) as f64 * q).round() as usize]
    }
}

/// Resets the kernel's peak-RSS counter so each row reports its own peak (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Warm-up, then timed runs; sorted seconds and the peak RSS meanwhile.
fn time_runtime(a: &Args, rt: &mut dyn Runtime, input: &Array, scan: &str) -> Result<Row> {
    reset_peak_rss();
    for _ in 0..a.warmup {
        rt.run(input)?;
    }
    let mut times = Vec::with_capacity(a.runs.max(1));
    for _ in 0..a.runs.max(1) {
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
    eprintln!(
        "  {} [{}]: p50 {:.3} s",
        row.runtime,
        row.scan,
        row.pct(0.5)
    );
    Ok(row)
}

fn print_table(rows: &[Row], batch: usize, reference: bool) {
    println!(
        "| runtime | provider | scan | runs | min s | p50 s | p95 s | images/s | peak RSS MB | vs PyTorch eager ({PYTORCH_PAPER_SECONDS} s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = if reference {
            format!(
                "{:.3}x ({:.1}x faster)",
                r.pct(0.5) / PYTORCH_PAPER_SECONDS,
                PYTORCH_PAPER_SECONDS / r.pct(0.5)
            )
        } else {
            "n/a (not the reference shape)".into()
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {} | {ratio} |",
            r.runtime,
            r.provider,
            r.scan,
            r.times.len(),
            r.times[0],
            r.pct(0.5),
            r.pct(0.95),
            batch as f64 / r.pct(0.5),
            r.rss
                .map_or("?".into(), |b| format!("{:.0}", b as f64 / 1e6)),
        );
    }
}

/// The batch the rows were timed at.
fn rows_batch(a: &Args, deploy: Option<&DeployReport>) -> usize {
    deploy.map_or(a.batch.unwrap_or(1), |d| d.batch)
}

/// What a deployer needs to know about a run under a device profile: the provider that ran
/// against the ones the profile asks for, precision, model form, peak memory against the
/// profile's budget.
struct DeployReport {
    profile: String,
    path: String,
    wanted: Vec<&'static str>,
    provider: &'static str,
    description: String,
    precision: String,
    model_precision: String,
    form: String,
    batch: usize,
    p50: f64,
    p95: f64,
    peak_mb: Option<f64>,
    budget_mb: Option<usize>,
}

impl DeployReport {
    fn new(
        a: &Args,
        p: &vmunet_runtime::DeviceProfile,
        session: &vmunet_runtime::Session,
        row: &Row,
        batch: usize,
    ) -> Self {
        let metadata = session.file().map(|f| &f.metadata);
        Self {
            profile: p.name.clone(),
            path: a
                .engine
                .profile
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            wanted: p.providers().iter().map(|p| p.name()).collect(),
            provider: row.provider,
            description: row.runtime.clone(),
            precision: format!("{:?}", p.precision).to_lowercase(),
            model_precision: metadata
                .and_then(|m| m.precision)
                .map_or("fp32".into(), |x| x.to_string()),
            form: row.scan.clone(),
            batch,
            p50: row.pct(0.5),
            p95: row.pct(0.95),
            peak_mb: row.rss.map(|b| b as f64 / (1u64 << 20) as f64),
            budget_mb: p.memory_budget_mb,
        }
    }

    /// `within`, `OVER` or `unknown` (no budget or no measurement).
    fn verdict(&self) -> &'static str {
        match (self.peak_mb, self.budget_mb) {
            (Some(peak), Some(budget)) if peak <= budget as f64 => "within budget",
            (Some(_), Some(_)) => "OVER BUDGET",
            _ => "no budget set",
        }
    }

    fn print(&self) {
        println!();
        println!("profile {} ({}):", self.profile, self.path);
        println!(
            "  provider: {} (profile asks for {}){}",
            self.provider,
            self.wanted.join(" > "),
            if self.wanted.first() == Some(&self.provider) {
                String::new()
            } else {
                format!("; {}", self.description)
            }
        );
        println!(
            "  precision: profile {}, model {}; model form: {}",
            self.precision, self.model_precision, self.form
        );
        println!(
            "  latency: p50 {:.1} ms, p95 {:.1} ms; {:.2} images/s at batch {}",
            self.p50 * 1e3,
            self.p95 * 1e3,
            self.batch as f64 / self.p50,
            self.batch
        );
        let peak = self.peak_mb.map_or("?".into(), |m| format!("{m:.0} MiB"));
        match self.budget_mb {
            Some(b) => println!(
                "  peak memory: {peak} of a {b} MiB budget: {}",
                self.verdict()
            ),
            None => println!("  peak memory: {peak} (the profile sets no memory_budget_mb)"),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.profile, "path": self.path, "providers_wanted": self.wanted,
            "provider": self.provider, "precision": self.precision,
            "model_precision": self.model_precision, "form": self.form, "batch": self.batch,
            "p50_s": self.p50, "p95_s": self.p95, "images_per_s": self.batch as f64 / self.p50,
            "peak_mib": self.peak_mb, "memory_budget_mib": self.budget_mb,
            "verdict": self.verdict(),
        })
    }
}

fn input(shape: &[usize]) -> Array {
    let n: usize = shape.iter().product();
    Array {
        shape: shape.to_vec(),
        data: (0..n).map(|i| ((i * 7919) % 256) as f32).collect(),
    }
}

pub fn run(a: Args) -> Result<()> {
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("configuring the thread pool")?;
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rows = Vec::new();
    let (header, reference);
    let deploy;
    if a.engine.model.is_some() {
        let mut session = a.engine.open(a.threads)?;
        let (h, w) = session.input_size(a.size)?;
        let batch = a.batch.or(session.profile().map(|p| p.batch)).unwrap_or(1);
        let x = input(&[batch, session.channels(), h, w]);
        let scan = scan_form_label(&session).unwrap_or_else(|| "?".into());
        header = format!("{}, input {:?}", session.label(), x.shape);
        reference = is_paper_export(&session) && x.shape == [1, 3, 256, 256];
        let row = time_runtime(&a, &mut session, &x, &scan)?;
        deploy = session
            .profile()
            .map(|p| DeployReport::new(&a, p, &session, &row, batch));
        rows.push(row);
    } else {
        #[cfg(feature = "full")]
        {
            (header, reference) = bench_checkpoint(&a, threads, &mut rows)?;
            deploy = None;
        }
        #[cfg(not(feature = "full"))]
        anyhow::bail!("give --model FILE.onnx (this build runs exported models only)");
    }
    let batch = rows_batch(&a, deploy.as_ref());
    println!("vmunet bench: {header}, {threads} threads");
    print_table(&rows, batch, reference);
    if let Some(d) = &deploy {
        d.print();
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "model": header, "threads": threads, "batch": batch,
            "profile": deploy.as_ref().map(DeployReport::json),
            "pytorch_reference_s": PYTORCH_PAPER_SECONDS,
            "rows": rows.iter().map(|r| serde_json::json!({
                "runtime": r.runtime, "scan": r.scan, "runs_s": r.times,
                "min_s": r.times[0], "p50_s": r.pct(0.5), "p95_s": r.pct(0.95),
                "images_per_s": batch as f64 / r.pct(0.5), "peak_rss_bytes": r.rss,
                "provider": r.provider,
                "ratio_vs_pytorch": if reference { Some(r.pct(0.5) / PYTORCH_PAPER_SECONDS) } else { None },
            })).collect::<Vec<_>>(),
        });
        vmunet_data::write_atomic(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

/// True when the ONNX file records the paper's configuration.
#[cfg(feature = "full")]
fn is_paper_export(session: &vmunet_runtime::Session) -> bool {
    session
        .file()
        .and_then(|f| f.metadata.config.as_deref())
        .and_then(|j| serde_json::from_str::<vmunet_model::VmUnetConfig>(j).ok())
        .is_some_and(|c| c == vmunet_model::VmUnetConfig::paper(c.num_classes))
}

/// Without burn there is no configuration type to compare with: no PyTorch ratio.
#[cfg(not(feature = "full"))]
fn is_paper_export(_: &vmunet_runtime::Session) -> bool {
    false
}

/// Times the checkpoint / preset in burn and, with `--all`, each scan formulation of its
/// export in tract and ONNX Runtime.
#[cfg(feature = "full")]
fn bench_checkpoint(a: &Args, threads: usize, rows: &mut Vec<Row>) -> Result<(String, bool)> {
    let loaded = a.engine.source.load()?;
    let cfg = loaded.config.clone();
    let (size, batch) = (a.size.unwrap_or(256), a.batch.unwrap_or(1));
    let shape = [batch, cfg.input_channels, size, size];
    loaded.model.check_input(shape)?;
    let reference =
        cfg == vmunet_model::VmUnetConfig::paper(cfg.num_classes) && size == 256 && batch == 1;
    let header = format!(
        "{} ({} parameters), input {:?}",
        loaded.label,
        group(loaded.model.num_params()),
        shape
    );
    let x = input(&shape);
    let forms = if a.all {
        ScanForm::ALL.to_vec()
    } else {
        Vec::new()
    };
    let tmp = std::env::temp_dir().join(format!("vmunet-bench-{}", std::process::id()));
    if a.all {
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
    }
    let result = (|| -> Result<()> {
        for scan in forms {
            let path = tmp.join(format!("{scan}.onnx"));
            let opts = ExportOptions {
                height: size,
                width: size,
                scan,
                chunk: a.chunk,
                ..Default::default()
            };
            write(&export(&loaded.model, &cfg, &opts)?, &path)?;
            let label = if scan == ScanForm::Chunked {
                format!("chunked ({})", a.chunk)
            } else {
                scan.to_string()
            };
            // tract single-threaded, and with its multithreaded matrix products (the
            // chunked form is timed once: it takes the longest).
            let mut counts = vec![a.threads.unwrap_or(1)];
            if a.threads.is_none() && threads > 1 && scan != ScanForm::Chunked {
                counts.push(threads);
            }
            for t in counts {
                let mut tract = vmunet_runtime::TractRuntime::open_with_threads(&path, t)?;
                rows.push(time_runtime(a, &mut tract, &x, &label)?);
            }
            match vmunet_runtime::OrtRuntime::open(
                &path,
                &vmunet_runtime::OrtOptions {
                    threads: a.threads,
                    ..Default::default()
                },
            ) {
                Ok(mut ort) => rows.push(time_runtime(a, &mut ort, &x, &label)?),
                Err(e) => eprintln!("  onnxruntime skipped: {e}"),
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    let mut burn = BurnRuntime::new(loaded.model);
    rows.push(time_runtime(a, &mut burn, &x, "vmunet-scan kernel")?);
    Ok((header, reference))
}
