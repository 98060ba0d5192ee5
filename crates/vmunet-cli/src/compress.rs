//! `vmunet compress`: fp16, int8 and the int8 sensitivity report on exported ONNX models.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vmunet_compress::{
    sensitivity, to_fp16, ActivationType, CalibrationSet, Format, Fp16Options, Int8Options,
    KeepReason, Method,
};
use vmunet_data::Preprocess;
use vmunet_onnx_ir::{InputSize, Model, ScanForm};
use vmunet_runtime::{DeviceProfile, ModelDim, ModelFile, ProviderName, RuntimeKind};

/// Arguments of `vmunet compress`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// float16 weights and activations; the selective scan, softplus, exponentials and
    /// LayerNorm stay float32 (Cast at the borders), as does any node whose range (checked on
    /// --calib images, else synthetic ones) does not fit float16.
    Fp16(Fp16Args),
    /// int8 post-training quantisation (weights per channel, activations per tensor
    /// calibrated on real images) in QDQ form (ONNX Runtime, TensorRT) or QOperator form
    /// (tract), or weights only (--dynamic).
    Int8(Int8Args),
    /// Rank the Conv/MatMul nodes by the logit error that quantising each alone adds.
    Sensitivity(SensitivityArgs),
    /// Structured pruning of a checkpoint: whole SS2D inner channels (and optionally states)
    /// leave every tensor, so the model and its scan really shrink; optional fine-tuning.
    #[cfg(feature = "full")]
    Prune(PruneArgs),
    /// Measure every compressed form of a checkpoint side by side (size, multiply-adds,
    /// latency in tract and ONNX Runtime, the paper's metrics, parity against fp32): Markdown,
    /// JSON and a DSC-against-latency chart.
    #[cfg(feature = "full")]
    Report(crate::compress_report::ReportArgs),
}

#[cfg(feature = "full")]
#[derive(clap::Args)]
struct PruneArgs {
    /// The checkpoint to prune (.bpk, or an official .pth / .safetensors).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Fraction of the target to remove, in (0, 1).
    #[arg(long)]
    ratio: f64,
    /// What the ratio measures: params or flops (multiply-adds at the training size).
    #[arg(long, value_parser = ["params", "flops"], default_value = "params")]
    target: String,
    /// Also remove this fraction of every block's states (d_state), in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    state_ratio: f64,
    /// Input size the multiply-adds are counted at (default: the training size, else 256).
    #[arg(long)]
    size: Option<usize>,
    /// Output checkpoint (the fine-tuned one with --finetune-data).
    #[arg(short, long, value_name = "OUT.bpk")]
    output: PathBuf,
    /// Fine-tune the pruned model on this dataset (ISIC layout) before writing OUT.
    #[arg(long, value_name = "DIR")]
    finetune_data: Option<PathBuf>,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 10, requires = "finetune_data")]
    finetune_epochs: usize,
    /// Fine-tuning learning rate (cosine to 1e-5 over the epochs).
    #[arg(long, default_value_t = 3e-4, requires = "finetune_data")]
    finetune_lr: f64,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 8, requires = "finetune_data")]
    batch_size: usize,
    /// Where the fine-tuning run lives (default: OUT without extension, then `-finetune`).
    #[arg(long, value_name = "DIR", requires = "finetune_data")]
    finetune_out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning run in the --finetune-out folder (the pruning
    /// itself is deterministic and is redone).
    #[arg(long, requires = "finetune_data")]
    resume: bool,
    /// No per-epoch output.
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// The float32 ONNX export to compress.
    #[arg(long, value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Input size (H = W) to calibrate at, for a size-dynamic export (default: the size the
    /// export fixes, else 256).
    #[arg(long)]
    size: Option<usize>,
}

#[derive(clap::Args)]
struct CalibArgs {
    /// Calibration images: a folder of images (or a dataset root with images/ or
    /// train/images/), preprocessed as at inference.
    #[arg(long, value_name = "DIR")]
    calib: Option<PathBuf>,
    /// How many images to use (spread evenly over the folder).
    #[arg(long, default_value_t = 32)]
    calib_count: usize,
}

#[derive(clap::Args)]
struct Fp16Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// Keep these nodes float32 too (name or glob pattern, e.g. `layers.0.*`; repeatable).
    #[arg(long, value_name = "PATTERN")]
    keep_fp32: Vec<String>,
    /// Keep the model's input and output float32.
    #[arg(long)]
    keep_io_fp32: bool,
    /// Run LayerNorm in float16 as well.
    #[arg(long)]
    layernorm_fp16: bool,
    /// Output file.
    #[arg(short, long, value_name = "OUT.onnx")]
    output: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct QuantArgs {
    /// Graph form: qdq (ONNX Runtime, TensorRT) or qoperator (tract's integer kernels).
    /// Default: what --profile's runtime needs, else qdq.
    #[arg(long, value_parser = ["qdq", "qoperator"])]
    format: Option<String>,
    /// Activation range: minmax, percentile (99.99), percentile:P or entropy.
    #[arg(long, default_value = "minmax")]
    method: String,
    /// Activation type: s8 (S8S8) or u8 (U8S8). Default s8; an ONNX Runtime CPU profile on an
    /// x86 CPU without VNNI picks u8 with --reduce-range (measured fastest there, same DSC).
    #[arg(long, value_parser = ["s8", "u8"])]
    activations: Option<String>,
    /// Zero point 0 for activations (TensorRT needs it; set by a TensorRT profile).
    #[arg(long)]
    symmetric: bool,
    /// 7-bit weights (U8S8 on x86 without VNNI).
    #[arg(long)]
    reduce_range: bool,
    /// Also quantise x_proj and dt_proj, which compute the scan's parameters.
    #[arg(long)]
    quantize_scan_proj: bool,
    /// Also quantise the layer that produces the model's output.
    #[arg(long)]
    quantize_output_layer: bool,
    /// Keep the float constants that stay float (the scan's A and D, norms, biases) in
    /// float32 storage instead of float16 (widened at load either way).
    #[arg(long)]
    fp32_constants: bool,
}

#[derive(clap::Args)]
struct Int8Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    quant: QuantArgs,
    /// Keep these nodes float (name or glob pattern; repeatable).
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// No calibration: int8 weights only (qdq), or activations quantised at run time
    /// (qoperator: DynamicQuantizeLinear + MatMulInteger).
    #[arg(long, conflicts_with = "calib")]
    dynamic: bool,
    /// Device profile the model is for: picks the form (tract: qoperator; ONNX Runtime: qdq;
    /// TensorRT: qdq with symmetric activations) and checks its scan form.
    #[arg(long, value_name = "PROFILE.toml")]
    profile: Option<PathBuf>,
    /// Output file.
    #[arg(short, long, value_name = "OUT.onnx")]
    output: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SensitivityArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    quant: QuantArgs,
    /// Show the N most sensitive nodes (all with --json).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Also write the full table as JSON here.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Fp16(a) => fp16(a),
        Command::Int8(a) => int8(a),
        Command::Sensitivity(a) => sensitivity_cmd(a),
        #[cfg(feature = "full")]
        Command::Prune(a) => prune_cmd(a),
        #[cfg(feature = "full")]
        Command::Report(a) => crate::compress_report::run(a),
    }
}

#[cfg(feature = "full")]
fn prune_cmd(a: PruneArgs) -> Result<()> {
    use burn::module::Module;
    use vmunet_compress::prune::{prune, PruneOptions, Target};
    use vmunet_model::{checkpoint, CpuBackend};
    let dev = Default::default();
    let (model, info) = checkpoint::load::<CpuBackend>(&a.checkpoint, &dev)
        .with_context(|| format!("reading {}", a.checkpoint.display()))?;
    let trained = info.input_size;
    let size = a.size.or(trained).unwrap_or(256);
    let params = model.num_params();
    let opts = PruneOptions {
        ratio: a.ratio,
        target: if a.target == "flops" {
            Target::Flops
        } else {
            Target::Params
        },
        state_ratio: a.state_ratio,
        size,
    };
    let (pruned, cfg, report) = prune(model, &info.config, params, &opts)
        .with_context(|| format!("pruning {}", a.checkpoint.display()))?;
    let actual = pruned.num_params();
    anyhow::ensure!(
        actual == report.params.1,
        "internal: the pruned model has {actual} parameters, the plan {}",
        report.params.1
    );
    let mut step = vmunet_onnx_ir::CompressionStep {
        kind: "prune".into(),
        params: serde_json::Map::new(),
        tool: Some(format!("vmunet-compress {}", env!("CARGO_PKG_VERSION"))),
    };
    {
        let p = &mut step.params;
        p.insert("source".into(), a.checkpoint.display().to_string().into());
        p.insert(
            "source_sha256".into(),
            crate::export::sha256_hex(&a.checkpoint)?.into(),
        );
        p.insert("ratio".into(), a.ratio.into());
        p.insert("target".into(), a.target.clone().into());
        p.insert("state_ratio".into(), a.state_ratio.into());
        p.insert(
            "importance".into(),
            "weight magnitude: channels (|in_x| + |in_z|) * |out_norm| * |out_proj|; states |B| * |C|".into(),
        );
        p.insert("params_before".into(), report.params.0.into());
        p.insert("params_after".into(), report.params.1.into());
        p.insert("channel_keep".into(), report.channel_keep.into());
    }
    let history = |step: &vmunet_onnx_ir::CompressionStep| {
        let mut steps = info.history.clone();
        steps.push(step.clone());
        steps
    };
    checkpoint::save_with_history(&pruned, &a.output, trained, &history(&step))
        .with_context(|| format!("writing {}", a.output.display()))?;
    if !a.json {
        println!(
            "pruned {}: {} -> {} parameters ({:.1} %), {:.3} -> {:.3} GMACs at {size}x{size} ({:.1} %); every block keeps {:.1} % of its inner channels{}",
            a.checkpoint.display(),
            report.params.0,
            report.params.1,
            100.0 * report.params.1 as f64 / report.params.0 as f64,
            report.macs.0 as f64 / 1e9,
            report.macs.1 as f64 / 1e9,
            100.0 * report.macs.1 as f64 / report.macs.0 as f64,
            report.channel_keep * 100.0,
            if a.state_ratio > 0.0 {
                format!(" and {:.0} % of its states", (1.0 - a.state_ratio) * 100.0)
            } else {
                String::new()
            }
        );
        for b in &report.blocks {
            println!(
                "  {:<22} d_inner {:>4} -> {:<4} d_state {:>3} -> {}",
                b.block, b.d_inner.0, b.d_inner.1, b.d_state.0, b.d_state.1
            );
        }
        println!(
            "wrote {} (config: {} blocks with their own widths)",
            a.output.display(),
            cfg.block_names().len()
        );
    }
    if let Some(data) = &a.finetune_data {
        let run = a.finetune_out.clone().unwrap_or_else(|| {
            let stem = a
                .output
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pruned".into());
            a.output.with_file_name(format!("{stem}-finetune"))
        });
        let mut tc = vmunet_train::TrainConfig {
            data: data.clone(),
            out: run.clone(),
            epochs: a.finetune_epochs,
            batch_size: a.batch_size,
            image_size: Some(size),
            lr: a.finetune_lr,
            t_max: a.finetune_epochs,
            init: Some(a.output.clone()),
            ..Default::default()
        };
        tc.model.adopt(&cfg);
        crate::train::run_config(tc, a.resume, a.quiet, crate::train::BackendKind::Cpu)
            .with_context(|| format!("fine-tuning {} on {}", a.output.display(), data.display()))?;
        let best = run.join("best.bpk");
        let (tuned, _) = checkpoint::load::<CpuBackend>(&best, &dev)
            .with_context(|| format!("reading {}", best.display()))?;
        step.params.insert(
            "finetune".into(),
            serde_json::json!({
                "data": data.display().to_string(),
                "epochs": a.finetune_epochs,
                "lr": a.finetune_lr,
                "batch_size": a.batch_size,
                "run": run.display().to_string(),
                "checkpoint": "best.bpk (lowest validation loss)",
            }),
        );
        checkpoint::save_with_history(&tuned, &a.output, trained, &history(&step))
            .with_context(|| format!("writing {}", a.output.display()))?;
        if !a.json {
            println!(
                "fine-tuned: {} (the run's best.bpk; log and metrics in {})",
                a.output.display(),
                run.display()
            );
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Reads the model and the preprocessing its calibration needs.
fn open(m: &ModelArgs) -> Result<(Model, Preprocess)> {
    let file = ModelFile::read(&m.model)?;
    let model = Model::read(&m.model).with_context(|| format!("reading {}", m.model.display()))?;
    let channels = match file.input.dims.get(1) {
        Some(ModelDim::Fixed(c)) => *c,
        _ => 3,
    };
    let fixed = match file.metadata.input_size {
        Some(InputSize::Fixed { height, width }) => Some((height, width)),
        _ => match (file.input.dims.get(2), file.input.dims.get(3)) {
            (Some(ModelDim::Fixed(h)), Some(ModelDim::Fixed(w))) => Some((*h, *w)),
            _ => None,
        },
    };
    let (height, width) = match (fixed, m.size) {
        (Some((h, w)), Some(s)) if (h, w) != (s, s) => anyhow::bail!(
            "{}: the model takes {h}x{w} inputs, not --size {s}",
            m.model.display()
        ),
        (Some(hw), _) => hw,
        (None, Some(s)) => (s, s),
        (None, None) => (256, 256),
    };
    Ok((
        model,
        Preprocess {
            height,
            width,
            channels,
        },
    ))
}

fn calibration(c: &CalibArgs, pre: &Preprocess, required: bool) -> Result<Option<CalibrationSet>> {
    match &c.calib {
        Some(dir) => Ok(Some(CalibrationSet::from_dir(dir, c.calib_count, pre)?)),
        None if required => anyhow::bail!(
            "static int8 quantisation calibrates on real images: give --calib DIR (e.g. the training images), or --dynamic"
        ),
        None => Ok(None),
    }
}

fn write(model: &Model, path: &Path) -> Result<u64> {
    model
        .write(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
}

fn size_line(input: &Path, output: &Path, out_bytes: u64) -> String {
    let in_bytes = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    format!(
        "wrote {} ({:.2} MB, {:.2}x the {:.2} MB input)",
        output.display(),
        out_bytes as f64 / 1e6,
        out_bytes as f64 / in_bytes.max(1) as f64,
        in_bytes as f64 / 1e6
    )
}

fn fp16(a: Fp16Args) -> Result<()> {
    let (model, pre) = open(&a.model)?;
    let calib = match calibration(&a.calib, &pre, false)? {
        Some(c) => c,
        None => CalibrationSet::synthetic(4, &pre),
    };
    let opts = Fp16Options {
        keep_fp32: a.keep_fp32.clone(),
        keep_io_fp32: a.keep_io_fp32,
        keep_layernorm_fp32: !a.layernorm_fp16,
        keep_scan_fp32: true,
    };
    let (out, report) = to_fp16(&model, &opts, &calib)
        .with_context(|| format!("converting {} to float16", a.model.model.display()))?;
    let bytes = write(&out, &a.output)?;
    if a.json {
        let v = serde_json::json!({
            "model": a.model.model.display().to_string(),
            "output": a.output.display().to_string(),
            "bytes": bytes,
            "half_nodes": report.half_nodes,
            "casts": report.casts,
            "half_initializers": report.half_initializers,
            "range_check": report.calibration,
            "kept_fp32": report.kept.iter().map(|(n, r)| serde_json::json!({"node": n, "reason": r.to_string()})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "fp16: {} nodes in float16, {} kept float32, {} casts; range check on {}",
        report.half_nodes,
        report.kept.len(),
        report.casts,
        report.calibration
    );
    let mut policy = std::collections::BTreeMap::<&str, usize>::new();
    for (n, r) in &report.kept {
        match r {
            KeepReason::Scan | KeepReason::LayerNorm => *policy.entry(r.label()).or_default() += 1,
            _ => println!("  kept float32: {n}: {r}"),
        }
    }
    for (k, v) in policy {
        println!("  kept float32 by policy: {v} {k} node(s)");
    }
    println!("{}", size_line(&a.model.model, &a.output, bytes));
    Ok(())
}

fn int8_options(
    q: &QuantArgs,
    format: Format,
    exclude: Vec<String>,
    dynamic: bool,
) -> Result<Int8Options> {
    Ok(Int8Options {
        format,
        method: Method::parse(&q.method)?,
        exclude,
        dynamic,
        activation_type: if q.activations.as_deref() == Some("u8") {
            ActivationType::U8
        } else {
            ActivationType::S8
        },
        symmetric_activations: q.symmetric,
        reduce_range: q.reduce_range,
        quantize_scan_projections: q.quantize_scan_proj,
        quantize_output_layer: q.quantize_output_layer,
        fp16_constants: !q.fp32_constants,
        only: None,
    })
}

/// An x86-64 CPU without VNNI (ONNX Runtime's U8S8 kernels may saturate there unless the
/// weights use 7 bits).
pub(crate) fn x86_without_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !(std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn parse_format(s: Option<&str>) -> Option<Format> {
    s.map(|f| {
        if f == "qoperator" {
            Format::QOperator
        } else {
            Format::Qdq
        }
    })
}

fn int8(a: Int8Args) -> Result<()> {
    let (model, pre) = open(&a.model)?;
    let mut format = parse_format(a.quant.format.as_deref());
    let mut symmetric = a.quant.symmetric;
    if let Some(p) = &a.profile {
        let profile = DeviceProfile::load(p)?;
        let meta = model.metadata()?;
        let form = meta.scan.unwrap_or_default();
        if form != profile.scan {
            anyhow::bail!(
                "{}: the model uses the {} scan form but profile `{}` ({}) runs the {} form; export for the profile first (vmunet export --profile {})",
                a.model.model.display(),
                form,
                profile.name,
                p.display(),
                profile.scan,
                p.display()
            );
        }
        let wanted = match profile.runtime_kind() {
            RuntimeKind::Tract => Format::QOperator,
            _ => Format::Qdq,
        };
        if let Some(f) = format.filter(|f| *f != wanted) {
            anyhow::bail!(
                "profile `{}` runs {} and needs --format {}, not {}",
                profile.name,
                profile.runtime,
                wanted.name(),
                f.name()
            );
        }
        format = Some(wanted);
        if profile.providers.contains(&ProviderName::Tensorrt) {
            if form == ScanForm::Custom {
                anyhow::bail!(
                    "{}: TensorRT cannot run the custom scan operator; export the {} form for profile `{}`",
                    a.model.model.display(),
                    profile.scan,
                    profile.name
                );
            }
            symmetric = true;
        }
    }
    let format = format.unwrap_or(Format::Qdq);
    let mut opts = int8_options(&a.quant, format, a.exclude.clone(), a.dynamic)?;
    opts.symmetric_activations = symmetric;
    if let Some(p) = &a.profile {
        let profile = DeviceProfile::load(p)?;
        let cpu_ort = profile.runtime_kind() == RuntimeKind::Ort
            && profile.providers.iter().all(|p| *p == ProviderName::Cpu);
        if cpu_ort && a.quant.activations.is_none() && x86_without_vnni() {
            // ONNX Runtime's x86 U8S8 path, 7-bit weights against saturation without VNNI.
            opts.activation_type = ActivationType::U8;
            opts.reduce_range = true;
        }
    }
    let calib = calibration(&a.calib, &pre, !a.dynamic)?;
    let (out, report) = vmunet_compress::quantize(&model, &opts, calib.as_ref())
        .with_context(|| format!("quantising {}", a.model.model.display()))?;
    let bytes = write(&out, &a.output)?;
    if a.json {
        let v = serde_json::json!({
            "model": a.model.model.display().to_string(),
            "output": a.output.display().to_string(),
            "bytes": bytes,
            "format": format.name(),
            "method": if a.dynamic { "dynamic".to_string() } else { opts.method.to_string() },
            "calibration": report.calibration,
            "quantized": report.quantized,
            "kept_float": report.excluded.iter().map(|(n, w)| serde_json::json!({"node": n, "reason": w})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "int8 ({}, {}): {} Conv/MatMul nodes quantised, {} with int8 weights only, {} kept float, {} constants stored as float16{}",
        format.name(),
        if a.dynamic { "dynamic".to_string() } else { format!("{} calibration", opts.method) },
        report.quantized.len(),
        report.weight_only.len(),
        report.excluded.len() - report.weight_only.len(),
        report.fp16_constants,
        if report.calibration.is_empty() { String::new() } else { format!("; calibrated on {}", report.calibration) }
    );
    let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
    for (_, w) in &report.excluded {
        *reasons.entry(w.as_str()).or_default() += 1;
    }
    for (w, c) in reasons {
        println!("  kept float: {c} node(s): {w}");
    }
    println!("{}", size_line(&a.model.model, &a.output, bytes));
    Ok(())
}

fn sensitivity_cmd(a: SensitivityArgs) -> Result<()> {
    let (model, pre) = open(&a.model)?;
    let calib = calibration(&a.calib, &pre, true)?.expect("required");
    let format = parse_format(a.quant.format.as_deref()).unwrap_or(Format::Qdq);
    let opts = int8_options(&a.quant, format, Vec::new(), false)?;
    let rows = sensitivity(&model, &opts, &calib)
        .with_context(|| format!("sensitivity of {}", a.model.model.display()))?;
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows)?;
        vmunet_data::write_atomic(path, text.as_bytes())?;
    }
    println!(
        "int8 sensitivity ({} calibration, {} images from {}): mean |logit error| when only this node is quantised",
        opts.method,
        calib.len(),
        calib.source
    );
    println!(
        "{:>4}  {:<64} {:>8} {:>11} {:>11} {:>9}  default",
        "rank", "node", "op", "mean |err|", "max |err|", "flips %"
    );
    for (i, r) in rows.iter().take(a.top).enumerate() {
        println!(
            "{:>4}  {:<64} {:>8} {:>11.3e} {:>11.3e} {:>9.4}  {}",
            i + 1,
            r.node,
            r.op,
            r.mean_abs_error,
            r.max_abs_error,
            r.mask_flips * 100.0,
            r.default_excluded
                .as_deref()
                .map_or("quantised".to_string(), |w| format!("float ({w})"))
        );
    }
    if rows.len() > a.top {
        println!(
            "({} more; --top N or --json FILE for all)",
            rows.len() - a.top
        );
    }
    Ok(())
}
