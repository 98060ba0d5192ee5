//! `vmunet eval`: the paper's metrics for a checkpoint, or for an exported / compressed ONNX
//! model in any runtime, on a dataset folder. The evaluation is `vmunet_train::eval::evaluate`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_model::{checkpoint, CpuBackend};
use vmunet_runtime::{Runtime, Session, SessionOptions};
use vmunet_train::eval::{evaluate, EvalOptions, RuntimeSource};

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
    let device = Default::default();
    let mut opts = EvalOptions {
        size: a.size,
        batch_size: a.batch_size,
        max_images: a.max_images,
        threshold: a.threshold,
    };
    let progress = |i, n| eprintln!("case {i}/{n}");
    let report = match (&a.checkpoint, &a.model) {
        (Some(ck), _) => {
            let (model, info) = checkpoint::load::<CpuBackend>(ck, &device)
                .with_context(|| format!("loading {}", ck.display()))?;
            // A checkpoint is scored at the size it was trained at unless --size says otherwise.
            opts.size = opts.size.or(info.input_size);
            let label = ck.display().to_string();
            evaluate::<CpuBackend>(&mut &model, &label, &a.data, &opts, &device, progress)?
        }
        (None, Some(path)) => {
            let profile = match &a.profile {
                Some(p) => Some(vmunet_runtime::DeviceProfile::load(p)?),
                None => None,
            };
            let mut session = Session::open(
                path,
                &SessionOptions {
                    runtime: a.runtime,
                    profile,
                    threads: None,
                },
            )
            .with_context(|| format!("opening {}", path.display()))?;
            if session.fixed_size().is_some() {
                // A fixed-size export runs at its own size (a different --size is an error).
                opts.size = Some(session.input_size(a.size)?.0);
            }
            let classes = output_classes(&session)?;
            let label = format!("{} ({})", path.display(), session.description());
            let mut source = RuntimeSource {
                runtime: &mut session,
                classes,
            };
            evaluate::<CpuBackend>(&mut source, &label, &a.data, &opts, &device, progress)?
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

/// The number of output classes an exported model predicts (from its recorded config).
fn output_classes(session: &Session) -> Result<usize> {
    let file = session
        .file()
        .context("an ONNX session has its file information")?;
    let cfg = file.metadata.config.as_deref().with_context(|| {
        format!(
            "{}: no architecture config in the metadata",
            file.path.display()
        )
    })?;
    let cfg: vmunet_model::VmUnetConfig = serde_json::from_str(cfg)
        .with_context(|| format!("{}: unreadable architecture config", file.path.display()))?;
    Ok(cfg.num_classes)
}
