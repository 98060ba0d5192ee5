//! `vmunet compress`: fp16, int8, the int8 sensitivity report, structured pruning and the
//! compression report. The work is `vmunet_compress`'s; this file parses and prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_compress::{
    fp16_file, int8_file, sensitivity, sensitivity_table, CompressOutcome, CompressSource,
    Fp16Options, Int8Job, Int8Request,
};

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
    Prune(crate::compress_full::PruneArgs),
    /// Measure every compressed form of a checkpoint side by side (size, multiply-adds,
    /// latency in tract and ONNX Runtime, the paper's metrics, parity against fp32): Markdown,
    /// JSON and a DSC-against-latency chart.
    #[cfg(feature = "full")]
    Report(vmunet_compress::ReportJob),
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
    /// Calibration images: a folder of images (or a dataset root with images/ or
    /// train/images/), preprocessed as at inference.
    #[arg(long, value_name = "DIR")]
    calib: Option<PathBuf>,
    /// How many images to use (spread evenly over the folder).
    #[arg(long, default_value_t = 32)]
    calib_count: usize,
}

impl ModelArgs {
    fn source(&self) -> CompressSource {
        CompressSource {
            model: self.model.clone(),
            size: self.size,
            calib: self.calib.clone(),
            calib_count: self.calib_count,
        }
    }
}

#[derive(clap::Args)]
struct Fp16Args {
    #[command(flatten)]
    model: ModelArgs,
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
struct Int8Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    quant: Int8Request,
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
    quant: Int8Request,
    /// Show the N most sensitive nodes (all with --json).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Also write the full table as JSON here.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

/// Runs `vmunet compress`.
pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Fp16(a) => fp16(a),
        Command::Int8(a) => int8(a),
        Command::Sensitivity(a) => sensitivity_cmd(a),
        #[cfg(feature = "full")]
        Command::Prune(a) => crate::compress_full::prune(a),
        #[cfg(feature = "full")]
        Command::Report(a) => crate::compress_full::report(a),
    }
}

/// Prints a step's report: JSON, or the words.
fn print(outcome: &CompressOutcome, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.json)?);
    } else {
        print!("{}", outcome.text);
    }
    Ok(())
}

fn fp16(a: Fp16Args) -> Result<()> {
    let opts = Fp16Options {
        keep_fp32: a.keep_fp32.clone(),
        keep_io_fp32: a.keep_io_fp32,
        keep_layernorm_fp32: !a.layernorm_fp16,
        keep_scan_fp32: true,
    };
    let outcome = fp16_file(&a.model.source(), &opts, &a.output).with_context(|| {
        format!(
            "converting {} to float16 into {}",
            a.model.model.display(),
            a.output.display()
        )
    })?;
    print(&outcome, a.json)
}

fn int8(a: Int8Args) -> Result<()> {
    let job = Int8Job {
        request: a.quant.clone(),
        exclude: a.exclude.clone(),
        dynamic: a.dynamic,
        profile: crate::args::load_profile(a.profile.as_deref())?,
    };
    let outcome = int8_file(&a.model.source(), &job, &a.output).with_context(|| {
        format!(
            "quantising {} into {}",
            a.model.model.display(),
            a.output.display()
        )
    })?;
    print(&outcome, a.json)
}

fn sensitivity_cmd(a: SensitivityArgs) -> Result<()> {
    let (input, calib) = a.model.source().read()?;
    let calib = calib.context(
        "static int8 quantisation calibrates on real images: give --calib DIR (e.g. the training images)",
    )?;
    let opts = a.quant.options(Vec::new(), false);
    let rows = sensitivity(&input.model, &opts, &calib)
        .with_context(|| format!("sensitivity of {}", input.path.display()))?;
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows)?;
        vmunet_data::write_atomic(path, text.as_bytes())?;
    }
    print!("{}", sensitivity_table(&rows, a.top, &opts, &calib));
    Ok(())
}
