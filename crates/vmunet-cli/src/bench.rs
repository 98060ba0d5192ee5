//! `vmunet bench`: forward latency, throughput and peak memory, as a table and JSON. With
//! `--all` (or `--form`), scan formulations are exported and timed in every available runtime,
//! beside burn, in one run. `--kernel` adds the scan kernel at the model's stage shapes against
//! its arithmetic bound; `--peer` adds ratios against the official PyTorch model timed in the
//! same run by `tests/bench_peer.py` (`make bench-peer`). No ratio is ever printed against a
//! number this run did not measure.

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

/// The official PyTorch model timed beside this run (`tests/bench_peer.py`'s JSON).
#[derive(serde::Deserialize, serde::Serialize)]
struct Peer {
    /// torch version.
    torch: String,
    /// Threads torch ran with.
    threads: usize,
    /// Input shape it ran at.
    shape: Vec<usize>,
    /// Median forward with the official code's CPU scan (mamba's reference algorithm).
    forward_s: Option<f64>,
    /// Median forward with the scan replaced by a stand-in of the same shapes: everything
    /// except the scan.
    no_scan_s: f64,
    /// When and where it ran.
    machine: String,
    /// ISO date of the run.
    date: String,
}

impl Peer {
    fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the peer timings {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a bench_peer.py result (torch, threads, shape, forward_s, no_scan_s, machine, date)",
                path.display()
            )
        })
    }
}

fn print_table(rows: &[Row], batch: usize, peer: Option<&Peer>) {
    let peer_col = peer.map_or(String::new(), |p| {
        format!(
            " vs PyTorch {} ({}) |",
            p.torch,
            p.forward_s
                .map_or("reference scan not timed".into(), |f| format!("{f:.2} s"))
        )
    });
    println!(
        "| runtime | provider | scan | runs | min s | p50 s | p95 s | images/s | peak RSS MB |{peer_col}"
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|{}",
        if peer.is_some() { "---|" } else { "" }
    );
    for r in rows {
        let ratio = match peer.and_then(|p| p.forward_s) {
            Some(f) => format!(" {:.1}x faster |", f / r.pct(0.5)),
            None if peer.is_some() => " - |".into(),
            None => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {} |{ratio}",
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

/// Prints one runtime's time per operator type (the 15 largest, then the rest together).
fn print_op_profile(label: &str, p: &vmunet_runtime::OpProfile) {
    println!();
    println!(
        "{label}: time per operator type, {} ms per forward in the nodes",
        fmt_ms(p.total_s)
    );
    println!("| op | nodes | ms | share |");
    println!("|---|---|---|---|");
    let share = |s: f64| 100.0 * s / p.total_s.max(f64::MIN_POSITIVE);
    for o in p.ops.iter().take(15) {
        println!(
            "| {} | {} | {} | {:.1} % |",
            o.op,
            o.nodes,
            fmt_ms(o.seconds),
            share(o.seconds)
        );
    }
    if p.ops.len() > 15 {
        let rest = &p.ops[15..];
        let s: f64 = rest.iter().map(|o| o.seconds).sum();
        let n: usize = rest.iter().map(|o| o.nodes).sum();
        println!(
            "| {} other types | {n} | {} | {:.1} % |",
            rest.len(),
            fmt_ms(s),
            share(s)
        );
    }
}

fn fmt_ms(s: f64) -> String {
    format!("{:.1}", s * 1e3)
}

fn op_profile_json(label: &str, p: &vmunet_runtime::OpProfile) -> serde_json::Value {
    serde_json::json!({
        "label": label, "runtime": p.runtime, "total_s": p.total_s,
        "ops": p.ops.iter().map(|o| serde_json::json!({
            "op": o.op, "nodes": o.nodes, "seconds": o.seconds,
        })).collect::<Vec<_>>(),
    })
}

/// Profiles `path` per operator type in tract (`tract_threads`) and ONNX Runtime.
fn profile_ops(
    a: &Args,
    path: &std::path::Path,
    x: &Array,
    label: &str,
    tract_threads: usize,
    out: &mut Vec<(String, vmunet_runtime::OpProfile)>,
) -> Result<()> {
    let runs = a.runs.clamp(1, 3);
    let mut tract = vmunet_runtime::TractRuntime::open_with_threads(path, tract_threads)?;
    out.push((format!("tract [{label}]"), tract.op_profile(x, runs)?));
    drop(tract);
    let opts = vmunet_runtime::OrtOptions {
        threads: a.threads,
        ..Default::default()
    };
    match vmunet_runtime::ort_op_profile(path, &opts, x, runs, &std::env::temp_dir()) {
        Ok(p) => out.push((format!("onnxruntime [{label}]"), p)),
        Err(e) => eprintln!("  onnxruntime profile skipped: {e}"),
    }
    Ok(())
}

/// The scan kernel timed at every stage of a model, once per stage shape.
struct KernelReport {
    clock_ghz: f64,
    threads: usize,
    stages: Vec<KernelStage>,
}

/// One stage shape of [`KernelReport`]: timed with the bench's threads, and on one core alone
/// (a core's efficiency without the other threads sharing its caches and memory).
struct KernelStage {
    name: String,
    blocks: usize,
    timing: vmunet_scan::perf::KernelTiming,
    one_core: vmunet_scan::perf::KernelTiming,
}

impl KernelReport {
    /// Seconds of scan in one forward: each stage's time times its number of blocks.
    fn per_forward(&self) -> f64 {
        self.stages
            .iter()
            .map(|st| st.blocks as f64 * st.timing.seconds)
            .sum()
    }

    fn print(&self) {
        println!();
        println!(
            "scan kernel ({}), {} threads, core clock ~{:.2} GHz; bound: {} multiply-class ops per state update + {} per position over {} FMA pipes",
            vmunet_scan::simd_isa(),
            self.threads,
            self.clock_ghz,
            vmunet_scan::perf::FMA_OPS_PER_STATE,
            vmunet_scan::perf::FMA_OPS_PER_POSITION,
            vmunet_scan::perf::FMA_PIPES
        );
        println!("| stage | D | H x W | blocks | ms per call (p50) | best ms | ns per state update | cycles per 8-lane update per core | bound cycles | fraction of bound | one core alone: cycles | one core: fraction |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for st in &self.stages {
            let (t, one) = (&st.timing, &st.one_core);
            println!(
                "| {} | {} | {}x{} | {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.2} | {:.0} % | {:.1} | {:.0} % |",
                st.name,
                t.dims.channels,
                t.dims.height,
                t.dims.width,
                st.blocks,
                t.seconds * 1e3,
                t.best_seconds * 1e3,
                t.ns_per_update,
                t.cycles_per_vector_update,
                t.bound_cycles,
                100.0 * t.fraction_of_bound(),
                one.cycles_per_vector_update,
                100.0 * one.fraction_of_bound()
            );
        }
        println!(
            "scan per forward: {:.3} s (p50 calls; ns, cycles and fractions from each shape's best call)",
            self.per_forward()
        );
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "clock_ghz": self.clock_ghz, "threads": self.threads, "isa": vmunet_scan::simd_isa(),
            "per_forward_s": self.per_forward(),
            "stages": self.stages.iter().map(|st| {
                let (t, one) = (&st.timing, &st.one_core);
                serde_json::json!({
                    "stage": st.name, "d_inner": t.dims.channels, "height": t.dims.height,
                    "width": t.dims.width, "blocks": st.blocks, "seconds": t.seconds,
                    "best_seconds": t.best_seconds,
                    "ns_per_state_update": t.ns_per_update,
                    "cycles_per_vector_update": t.cycles_per_vector_update,
                    "bound_cycles": t.bound_cycles, "fraction_of_bound": t.fraction_of_bound(),
                    "one_core": {
                        "seconds": one.seconds, "best_seconds": one.best_seconds,
                        "cycles_per_vector_update": one.cycles_per_vector_update,
                        "fraction_of_bound": one.fraction_of_bound(),
                    },
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// Fewest timed calls per stage shape: the fractions use each shape's fastest call, and on a
/// shared machine a quiet one needs enough tries (the paper's stage 1 is ~12 ms a call).
#[cfg(feature = "full")]
const KERNEL_RUNS: usize = 30;

/// Times the scan kernel at each distinct stage shape of `cfg` at `size`.
#[cfg(feature = "full")]
fn kernel_report(
    cfg: &vmunet_model::VmUnetConfig,
    size: usize,
    runs: usize,
    threads: usize,
) -> Result<KernelReport> {
    let hz = vmunet_scan::perf::clock_hz().unwrap_or(f64::NAN);
    let mut stages: Vec<KernelStage> = Vec::new();
    let one_core = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("building a one-thread pool")?;
    for st in cfg.stage_shapes(size, size) {
        let dims = vmunet_scan::CrossScanDims {
            batch: 1,
            height: st.height,
            width: st.width,
            channels: st.d_inner,
            d_state: cfg.d_state,
            dt_rank: st.dt_rank,
        };
        if let Some(same) = stages.iter_mut().find(|s| s.timing.dims == dims) {
            same.name = format!("{} + {}", same.name, st.name);
            same.blocks += st.blocks;
            continue;
        }
        let timing = vmunet_scan::perf::time_cross_scan(dims, runs.max(KERNEL_RUNS), threads, hz)?;
        let one = one_core
            .install(|| vmunet_scan::perf::time_cross_scan(dims, runs.max(KERNEL_RUNS), 1, hz))?;
        stages.push(KernelStage {
            name: st.name,
            blocks: st.blocks,
            timing,
            one_core: one,
        });
    }
    Ok(KernelReport {
        clock_ghz: hz / 1e9,
        threads,
        stages,
    })
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

/// Runs `vmunet bench`.
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
    let peer = a.peer.as_deref().map(Peer::read).transpose()?;
    let mut rows = Vec::new();
    let mut by_op = Vec::new();
    let (header, shape);
    let deploy;
    let kernel;
    if a.engine.model.is_some() {
        let mut session = a.engine.open(a.threads)?;
        let (h, w) = session.input_size(a.size)?;
        let batch = a.batch.or(session.profile().map(|p| p.batch)).unwrap_or(1);
        let x = input(&[batch, session.channels(), h, w]);
        let scan = scan_form_label(&session).unwrap_or_else(|| "?".into());
        header = format!("{}, input {:?}", session.label(), x.shape);
        shape = x.shape.clone();
        kernel = if a.kernel {
            Some(model_kernel_report(&session, h, a.runs, threads)?)
        } else {
            None
        };
        let row = time_runtime(&a, &mut session, &x, &scan)?;
        if a.by_op {
            let path = a.engine.model.clone().unwrap_or_default();
            profile_ops(&a, &path, &x, &scan, a.threads.unwrap_or(1), &mut by_op)?;
        }
        deploy = session
            .profile()
            .map(|p| DeployReport::new(&a, p, &session, &row, batch));
        rows.push(row);
    } else {
        #[cfg(feature = "full")]
        {
            (header, shape, kernel) = bench_checkpoint(&a, threads, &mut rows, &mut by_op)?;
            deploy = None;
        }
        #[cfg(not(feature = "full"))]
        anyhow::bail!("give --model FILE.onnx (this build runs exported models only)");
    }
    let peer = match peer {
        Some(p) if p.shape != shape => {
            eprintln!(
                "warning: the peer timings are for input {:?}, this run is {:?}: no ratios",
                p.shape, shape
            );
            None
        }
        p => p,
    };
    let batch = rows_batch(&a, deploy.as_ref());
    println!("vmunet bench: {header}, {threads} threads");
    print_table(&rows, batch, peer.as_ref());
    if let Some(d) = &deploy {
        d.print();
    }
    if let Some(p) = &peer {
        println!();
        println!(
            "official PyTorch {} ({} threads, {}, {}): forward {}, without the scan {:.3} s",
            p.torch,
            p.threads,
            p.machine,
            p.date,
            p.forward_s
                .map_or("not timed".into(), |f| format!("{f:.2} s")),
            p.no_scan_s
        );
    }
    for (label, p) in &by_op {
        print_op_profile(label, p);
    }
    let split = kernel.as_ref().map(|k| {
        k.print();
        non_scan_split(&rows, k, peer.as_ref())
    });
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "model": header, "threads": threads, "batch": batch,
            "profile": deploy.as_ref().map(DeployReport::json),
            "kernel": kernel.as_ref().map(KernelReport::json),
            "non_scan": split,
            "by_op": by_op.iter().map(|(l, p)| op_profile_json(l, p)).collect::<Vec<_>>(),
            "peer": peer,
            "rows": rows.iter().map(|r| serde_json::json!({
                "runtime": r.runtime, "scan": r.scan, "runs_s": r.times,
                "min_s": r.times[0], "p50_s": r.pct(0.5), "p95_s": r.pct(0.95),
                "images_per_s": batch as f64 / r.pct(0.5), "peak_rss_bytes": r.rss,
                "provider": r.provider,
                "ratio_vs_pytorch": peer.as_ref().and_then(|p| p.forward_s).map(|f| r.pct(0.5) / f),
            })).collect::<Vec<_>>(),
        });
        vmunet_data::write_atomic(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

/// For every custom-scan row: the forward minus the kernel's share (the non-scan part of the
/// graph), printed and returned as JSON, beside PyTorch's forward without the scan when known.
fn non_scan_split(rows: &[Row], k: &KernelReport, peer: Option<&Peer>) -> serde_json::Value {
    let scan = k.per_forward();
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.scan == "custom") {
        let rest = r.pct(0.5) - scan;
        let vs = peer.map_or(String::new(), |p| {
            format!(
                "; PyTorch without the scan {:.3} s: {:.2}x",
                p.no_scan_s,
                rest / p.no_scan_s
            )
        });
        println!(
            "{} [custom]: forward {:.3} s = scan {:.3} s + the rest {:.3} s{vs}",
            r.runtime,
            r.pct(0.5),
            scan,
            rest
        );
        out.push(serde_json::json!({
            "runtime": r.runtime, "forward_s": r.pct(0.5), "scan_s": scan, "rest_s": rest,
            "rest_vs_pytorch_no_scan": peer.map(|p| rest / p.no_scan_s),
        }));
    }
    serde_json::Value::Array(out)
}

/// The kernel report for an exported model: its configuration from the ONNX metadata.
#[cfg(feature = "full")]
fn model_kernel_report(
    session: &vmunet_runtime::Session,
    size: usize,
    runs: usize,
    threads: usize,
) -> Result<KernelReport> {
    let cfg = session
        .file()
        .and_then(|f| f.metadata.config.as_deref())
        .and_then(|j| serde_json::from_str::<vmunet_model::VmUnetConfig>(j).ok())
        .context("--kernel: the model records no vmunet configuration in its metadata")?;
    kernel_report(&cfg, size, runs, threads)
}

/// Without burn there is no configuration type: no kernel report for a model file.
#[cfg(not(feature = "full"))]
fn model_kernel_report(
    _: &vmunet_runtime::Session,
    _: usize,
    _: usize,
    _: usize,
) -> Result<KernelReport> {
    anyhow::bail!(
        "--kernel needs the full build (the stage shapes come from the model configuration)"
    )
}

/// Times the checkpoint / preset in burn and, with `--all`, each scan formulation of its
/// export in tract and ONNX Runtime.
#[cfg(feature = "full")]
#[allow(clippy::type_complexity)]
fn bench_checkpoint(
    a: &Args,
    threads: usize,
    rows: &mut Vec<Row>,
    by_op: &mut Vec<(String, vmunet_runtime::OpProfile)>,
) -> Result<(String, Vec<usize>, Option<KernelReport>)> {
    let loaded = a.engine.source.load()?;
    let cfg = loaded.config.clone();
    let (size, batch) = (a.size.unwrap_or(256), a.batch.unwrap_or(1));
    let shape = [batch, cfg.input_channels, size, size];
    loaded.model.check_input(shape)?;
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
        a.form.clone()
    };
    let kernel = if a.kernel {
        Some(kernel_report(&cfg, size, a.runs, threads)?)
    } else {
        None
    };
    let tmp = std::env::temp_dir().join(format!("vmunet-bench-{}", std::process::id()));
    if !forms.is_empty() {
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
            if a.by_op {
                profile_ops(a, &path, &x, &label, a.threads.unwrap_or(1), by_op)?;
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    let mut burn = BurnRuntime::new(loaded.model);
    rows.push(time_runtime(a, &mut burn, &x, "vmunet-scan kernel")?);
    Ok((header, shape.to_vec(), kernel))
}
