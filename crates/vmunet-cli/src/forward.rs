//! `vmunet forward`: the tensor-level contract used by parity checks, for checkpoints (burn)
//! and exported models (tract, ONNX Runtime) alike.

use std::path::PathBuf;

use anyhow::Result;
use vmunet_data::write_npy;
use vmunet_runtime::Runtime;

use crate::args::EngineArgs;

/// Arguments of `vmunet forward`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Input: float32 .npy, NCHW; or an image (PNG, JPEG, ...), which gets the official
    /// preprocessing at the model's input size (or --size) as a batch of one.
    #[arg(long, value_name = "IN.npy|IMAGE")]
    input: PathBuf,
    /// Input size (H = W) for an image input (default: the model's, as `vmunet infer`).
    #[arg(long)]
    size: Option<usize>,
    /// Output: float32 .npy, (N, classes, H, W).
    #[arg(long, value_name = "OUT.npy")]
    output: PathBuf,
    /// Write probabilities (sigmoid / softmax) instead of raw logits.
    #[arg(long)]
    probabilities: bool,
}

/// Runs `vmunet forward`.
pub fn run(a: Args) -> Result<()> {
    let mut session = a.engine.open(None)?;
    let y = vmunet_runtime::forward_file(&mut session, &a.input, a.size, a.probabilities)?;
    write_npy(&a.output, &y.shape, &y.data)?;
    eprintln!(
        "wrote {} {:?} ({}) with {}",
        a.output.display(),
        y.shape,
        if a.probabilities {
            "probabilities"
        } else {
            "logits"
        },
        session.description()
    );
    Ok(())
}
