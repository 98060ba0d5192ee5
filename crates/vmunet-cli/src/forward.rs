//! `vmunet forward`: the tensor-level contract used by parity checks, for checkpoints (burn)
//! and exported models (tract, ONNX Runtime) alike.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_data::{activate, read_npy, write_npy};
use vmunet_runtime::Runtime;

use crate::util::EngineArgs;

/// Arguments of `vmunet forward`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Input: float32 .npy, NCHW.
    #[arg(long, value_name = "IN.npy")]
    input: PathBuf,
    /// Output: float32 .npy, (N, classes, H, W).
    #[arg(long, value_name = "OUT.npy")]
    output: PathBuf,
    /// Write probabilities (sigmoid / softmax) instead of raw logits.
    #[arg(long)]
    probabilities: bool,
}

pub fn run(a: Args) -> Result<()> {
    let arr = read_npy(&a.input)?;
    if arr.shape.len() != 4 {
        anyhow::bail!(
            "{}: expected a 4-D NCHW array, got shape {:?}",
            a.input.display(),
            arr.shape
        );
    }
    let mut session = a.engine.open(None)?;
    session
        .check(&arr.shape)
        .with_context(|| format!("{} does not fit the model", a.input.display()))?;
    let mut y = session
        .run(&arr)
        .with_context(|| format!("running {} on {}", session.label(), a.input.display()))?;
    if a.probabilities {
        activate(&mut y.data, &y.shape);
    }
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
