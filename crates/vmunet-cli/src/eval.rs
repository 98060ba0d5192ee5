//! `vmunet eval`: the paper's metrics for a checkpoint, or for an exported / compressed ONNX
//! model in any runtime, on a dataset folder. The evaluation is `vmunet_train::eval::evaluate`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_runtime::{Session, SessionOptions};
use vmunet_train::eval::{evaluate_checkpoint, evaluate_session, EvalOptions};

/// Arguments of `vmunet eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint (.bpk from `vmunet train`, official .pth, safetensors).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    checkpoint: Option<PathBuf>,
    /// An exported (or compressed) ONNX model instead, run with --runtime or --profile.
    #[arg(long, value_name = "model.onnx")]
    model: Option<PathBuf>,
    /// Runtime for --model: tract (default) or ort.
    #[arg(long, requires = "model")]
    runtime: Option<vmunet_runtime::RuntimeKind>,
    /// Device profile (devices/*.toml) for --model.
    #[arg(
        long,
        value_name = "PROFILE.toml",
        requires = "model",
        conflicts_with = "runtime"
    )]
    profile: Option<PathBuf>,
    /// Dataset folder: ISIC layout (evaluates val/), a plain folder with images/ and masks/,
    /// or Synapse (evaluates test_vol_h5/).
    #[arg(long)]
    data: PathBuf,
    /// Write the metrics as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Input size (default 256 for ISIC, 224 for Synapse; fixed-size ONNX models use theirs).
    #[arg(long)]
    size: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Evaluate at most this many images (ISIC).
    #[arg(long)]
    max_images: Option<usize>,
    /// Foreground threshold (ISIC).
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
}

/// Runs `vmunet eval`.
pub fn run(a: Args) -> Result<()> {
    let opts = EvalOptions {
        size: a.size,
        batch_size: a.batch_size,
        max_images: a.max_images,
        threshold: a.threshold,
    };
    let progress = |i, n| eprintln!("case {i}/{n}");
    let report = match (&a.checkpoint, &a.model) {
        (Some(ck), _) => evaluate_checkpoint(ck, &a.data, &opts, progress)
            .with_context(|| format!("evaluating {}", ck.display()))?,
        (None, Some(path)) => {
            let options = SessionOptions {
                runtime: a.runtime,
                profile: crate::args::load_profile(a.profile.as_deref())?,
                ..Default::default()
            };
            let mut session = Session::open(path, &options)
                .with_context(|| format!("opening {}", path.display()))?;
            evaluate_session(&mut session, &a.data, &opts, progress)?
        }
        (None, None) => anyhow::bail!("give --checkpoint FILE or --model FILE.onnx"),
    };
    print!("{}", report.markdown());
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        vmunet_data::write_atomic(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
