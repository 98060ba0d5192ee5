//! `vmunet compress report`: every compressed form of a checkpoint measured side by side in
//! one run (size, parameters, multiply-adds, latency in tract and ONNX Runtime, the paper's
//! metrics, parity against float32), as Markdown, JSON and a DSC-against-latency chart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use serde::Serialize;
use vmunet_compress::{
    quantize, to_fp16, CalibrationSet, Format, Fp16Options, Int8Options, Method,
};
use vmunet_data::{Array, Preprocess};
use vmunet_model::{checkpoint, CpuBackend};
use vmunet_onnx::{export, ExportOptions, ScanForm};
use vmunet_onnx_ir::Model;
use vmunet_runtime::{count_macs, Runtime, RuntimeKind, Session, SessionOptions};
use vmunet_train::eval::{evaluate, EvalOptions, EvalReport, RuntimeSource};

/// Arguments of `vmunet compress report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// The trained checkpoint (float32 reference).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Its pruned (and fine-tuned) checkpoint, from `vmunet compress prune`.
    #[arg(long, value_name = "FILE")]
    pruned: Option<PathBuf>,
    /// Dataset (ISIC layout): metrics on val/, calibration on train/images unless --calib.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Calibration images for int8 (default: DATA/train/images).
    #[arg(long, value_name = "DIR")]
    calib: Option<PathBuf>,
    /// Calibration images used.
    #[arg(long, default_value_t = 32)]
    calib_count: usize,
    /// int8 calibration method.
    #[arg(long, default_value = "minmax")]
    method: String,
    /// Scan form of the exports.
    #[arg(long, default_value = "custom")]
    scan: ScanForm,
    /// Output folder: the models, report.md, report.json, report.png.
    #[arg(long, default_value = "compress-report")]
    out: PathBuf,
    /// Timed runs per model and runtime (after 3 warm-up runs).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Threads of each runtime (default: 1, the steadiest comparison).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Validation images for the metrics (default: all).
    #[arg(long)]
    max_images: Option<usize>,
    /// Validation images for parity against float32.
    #[arg(long, default_value_t = 16)]
    parity_images: usize,
}

#[derive(Serialize)]
struct Latency {
    runtime: String,
    p50_ms: f64,
    p95_ms: f64,
}

#[derive(Serialize)]
struct Row {
    name: String,
    file: String,
    bytes: u64,
    parameters: usize,
    gmacs: f64,
    latency: Vec<Latency>,
    metrics_runtime: String,
    images: usize,
    dsc: f64,
    miou: f64,
    acc: f64,
    sen: f64,
    spe: f64,
    parity_max_abs_logit_diff: f64,
    parity_mask_agreement: f64,
    parity_mask_dice: f64,
}

struct Variant {
    name: &'static str,
    path: PathBuf,
    parameters: usize,
    /// The runtime the metrics are computed in.
    runtime: RuntimeKind,
}

fn ort_available() -> bool {
    vmunet_runtime::ort_lib::locate(None).is_ok()
}

fn export_checkpoint(ck: &Path, out: &Path, scan: ScanForm) -> Result<(usize, Option<usize>)> {
    let dev = Default::default();
    let (model, info) = checkpoint::load::<CpuBackend>(ck, &dev)
        .with_context(|| format!("reading {}", ck.display()))?;
    let size = info.input_size.unwrap_or(256);
    let history = info.history.clone();
    let opts = ExportOptions {
        height: size,
        width: size,
        scan,
        source: Some(ck.display().to_string()),
        source_sha256: Some(crate::export::sha256_hex(ck)?),
        history,
        ..Default::default()
    };
    let m = export(&model, &info.config, &opts)?;
    vmunet_onnx::write(&m, out).with_context(|| format!("writing {}", out.display()))?;
    Ok((model.num_params(), info.input_size))
}

fn write(model: &Model, path: &Path) -> Result<()> {
    model
        .write(path)
        .with_context(|| format!("writing {}", path.display()))
}

fn open(path: &Path, runtime: RuntimeKind, threads: usize) -> Result<Session> {
    Session::open(
        path,
        &SessionOptions {
            runtime: Some(runtime),
            profile: None,
            threads: Some(threads),
        },
    )
    .with_context(|| format!("opening {} in {}", path.display(), runtime.as_str()))
}

fn time(session: &mut Session, x: &Array, runs: usize) -> Result<(f64, f64)> {
    for _ in 0..3 {
        session.run(x)?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        session.run(x)?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    Ok((q(0.5), q(0.95)))
}

/// Max |logit diff|, mask agreement and Dice between the masks of the float32 logits
/// `reference` (one per input) and what `b` computes on `xs`.
fn parity(reference: &[Array], b: &mut Session, xs: &[Array]) -> Result<(f64, f64, f64)> {
    let (mut max, mut same, mut all, mut inter, mut sum) = (0f64, 0usize, 0usize, 0usize, 0usize);
    for (ya, x) in reference.iter().zip(xs) {
        let yb = b.run(x)?;
        for (p, q) in ya.data.iter().zip(&yb.data) {
            max = max.max((p - q).abs() as f64);
            let (mp, mq) = (*p > 0.0, *q > 0.0);
            same += usize::from(mp == mq);
            inter += usize::from(mp && mq);
            sum += usize::from(mp) + usize::from(mq);
            all += 1;
        }
    }
    let dice = if sum == 0 {
        1.0
    } else {
        2.0 * inter as f64 / sum as f64
    };
    Ok((max, same as f64 / all.max(1) as f64, dice))
}

/// The paper's metrics (DSC, mIoU, Acc, Sen, Spe) of a variant in its runtime.
fn metrics(
    v: &Variant,
    data: &Path,
    size: usize,
    max_images: Option<usize>,
    threads: usize,
) -> Result<(String, usize, [f64; 5])> {
    let mut session = open(&v.path, v.runtime, threads)?;
    let label = format!("{} ({})", v.name, session.description());
    let mut source = RuntimeSource {
        runtime: &mut session,
        classes: 1,
    };
    let opts = EvalOptions {
        size: Some(size),
        max_images,
        ..Default::default()
    };
    let report = evaluate::<CpuBackend>(
        &mut source,
        &label,
        data,
        &opts,
        &Default::default(),
        |_, _| {},
    )
    .with_context(|| format!("evaluating {}", v.path.display()))?;
    match report {
        EvalReport::Isic { report, .. } => {
            let m = report.metrics;
            Ok((
                v.runtime.as_str().to_string(),
                report.images,
                [m.dsc, m.miou, m.acc, m.sen, m.spe],
            ))
        }
        EvalReport::Synapse { .. } => anyhow::bail!("the report scores binary (ISIC) models"),
    }
}

/// Runs the report.
pub fn run(a: ReportArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let ort = ort_available();
    let runtimes: Vec<RuntimeKind> = if ort {
        vec![RuntimeKind::Tract, RuntimeKind::Ort]
    } else {
        eprintln!("ONNX Runtime not found (ORT_DYLIB_PATH): tract only");
        vec![RuntimeKind::Tract]
    };
    let metric_rt = |format: Option<Format>| match format {
        Some(Format::QOperator) => RuntimeKind::Tract,
        _ if ort => RuntimeKind::Ort,
        _ => RuntimeKind::Tract,
    };

    // The exports and their compressed forms.
    let fp32 = a.out.join("fp32.onnx");
    let (params, trained) = export_checkpoint(&a.checkpoint, &fp32, a.scan)?;
    let size = trained.unwrap_or(256);
    let pre = Preprocess {
        height: size,
        width: size,
        channels: 3,
    };
    let calib_dir = a
        .calib
        .clone()
        .unwrap_or_else(|| a.data.join("train/images"));
    let calib = CalibrationSet::from_dir(&calib_dir, a.calib_count, &pre)?;
    let method = Method::parse(&a.method)?;
    let base = Model::read(&fp32)?;
    let mut variants = vec![Variant {
        name: "fp32",
        path: fp32.clone(),
        parameters: params,
        runtime: metric_rt(None),
    }];
    let (half, _) = to_fp16(&base, &Fp16Options::default(), &calib)?;
    let p = a.out.join("fp16.onnx");
    write(&half, &p)?;
    variants.push(Variant {
        name: "fp16",
        path: p,
        parameters: params,
        runtime: metric_rt(None),
    });
    // QDQ as the x86 ONNX Runtime profile makes it (U8S8 with 7-bit weights without VNNI).
    let u8s8 = crate::compress::x86_without_vnni();
    let int8 = |m: &Model, format: Format| {
        let ort_x86 = u8s8 && format == Format::Qdq;
        quantize(
            m,
            &Int8Options {
                format,
                method,
                activation_type: if ort_x86 {
                    vmunet_compress::ActivationType::U8
                } else {
                    vmunet_compress::ActivationType::S8
                },
                reduce_range: ort_x86,
                ..Default::default()
            },
            Some(&calib),
        )
    };
    for (name, format) in [
        ("int8-qdq", Format::Qdq),
        ("int8-qoperator", Format::QOperator),
    ] {
        let (q, _) = int8(&base, format)?;
        let p = a.out.join(format!("{name}.onnx"));
        write(&q, &p)?;
        variants.push(Variant {
            name,
            path: p,
            parameters: params,
            runtime: metric_rt(Some(format)),
        });
    }
    if let Some(pruned) = &a.pruned {
        let pp = a.out.join("pruned.onnx");
        let (pparams, _) = export_checkpoint(pruned, &pp, a.scan)?;
        let pbase = Model::read(&pp)?;
        variants.push(Variant {
            name: "pruned",
            path: pp,
            parameters: pparams,
            runtime: metric_rt(None),
        });
        for (name, format) in [
            ("pruned-int8-qdq", Format::Qdq),
            ("pruned-int8-qoperator", Format::QOperator),
        ] {
            let (q, _) = int8(&pbase, format)?;
            let p = a.out.join(format!("{name}.onnx"));
            write(&q, &p)?;
            variants.push(Variant {
                name,
                path: p,
                parameters: pparams,
                runtime: metric_rt(Some(format)),
            });
        }
    }

    // Parity inputs: validation images, preprocessed.
    let val = CalibrationSet::from_dir(&a.data.join("val/images"), a.parity_images, &pre)?;
    let x = val.inputs[0].clone();
    let mut rows = Vec::new();
    let mut reference: Vec<(RuntimeKind, Vec<Array>)> = Vec::new();
    for v in &variants {
        eprintln!("measuring {} ...", v.name);
        let bytes = std::fs::metadata(&v.path).map(|m| m.len()).unwrap_or(0);
        let macs = count_macs(&v.path, &x.shape)?;
        let mut latency = Vec::new();
        for &rt in &runtimes {
            let mut s = open(&v.path, rt, a.threads)?;
            let (p50, p95) = time(&mut s, &x, a.runs)?;
            latency.push(Latency {
                runtime: rt.as_str().to_string(),
                p50_ms: p50,
                p95_ms: p95,
            });
        }
        let (metrics_runtime, images, m) = metrics(v, &a.data, size, a.max_images, a.threads)?;
        if !reference.iter().any(|(rt, _)| *rt == v.runtime) {
            // The float32 logits, once per runtime.
            let mut s = open(&fp32, v.runtime, a.threads)?;
            let ys = val
                .inputs
                .iter()
                .map(|x| s.run(x))
                .collect::<Result<Vec<_>, _>>()?;
            reference.push((v.runtime, ys));
        }
        let logits = reference
            .iter()
            .find(|(rt, _)| *rt == v.runtime)
            .map(|(_, ys)| ys.as_slice())
            .unwrap_or_default();
        let mut candidate = open(&v.path, v.runtime, a.threads)?;
        let (max, agree, dice) = parity(logits, &mut candidate, &val.inputs)?;
        rows.push(Row {
            name: v.name.to_string(),
            file: v.path.display().to_string(),
            bytes,
            parameters: v.parameters,
            gmacs: macs as f64 / 1e9,
            latency,
            metrics_runtime,
            images,
            dsc: m[0],
            miou: m[1],
            acc: m[2],
            sen: m[3],
            spe: m[4],
            parity_max_abs_logit_diff: max,
            parity_mask_agreement: agree,
            parity_mask_dice: dice,
        });
    }

    let machine = machine();
    let json = serde_json::json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "pruned": a.pruned.as_ref().map(|p| p.display().to_string()),
        "input_size": size,
        "scan": a.scan.to_string(),
        "threads": a.threads,
        "runs": a.runs,
        "calibration": format!("{} ({} images, {})", calib.source, calib.len(), method),
        "int8_qdq_activations": if u8s8 { "u8, 7-bit weights (x86 without VNNI)" } else { "s8" },
        "machine": machine,
        "rows": rows,
    });
    vmunet_data::write_atomic(
        &a.out.join("report.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let md = markdown(&rows, &runtimes, size, &a, &machine);
    vmunet_data::write_atomic(&a.out.join("report.md"), md.as_bytes())?;
    chart(&rows, &runtimes, &a.out.join("report.png"))?;
    print!("{md}");
    println!(
        "wrote {0}/report.md, {0}/report.json, {0}/report.png and the models",
        a.out.display()
    );
    Ok(())
}

fn machine() -> String {
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

fn markdown(
    rows: &[Row],
    runtimes: &[RuntimeKind],
    size: usize,
    a: &ReportArgs,
    machine: &str,
) -> String {
    let base = &rows[0];
    let mut s = format!(
        "# Compression report\n\n{} at {size}x{size}, scan `{}`; {} timed runs per model and runtime, {} thread(s); {machine}.\n\
         Metrics on the validation images of {} (each model in the runtime named); parity against fp32 on {} validation images.\n\n",
        a.checkpoint.display(),
        a.scan,
        a.runs,
        a.threads,
        a.data.display(),
        a.parity_images
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

fn chart(rows: &[Row], runtimes: &[RuntimeKind], path: &Path) -> Result<()> {
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
