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

pub fn run(a: Args) -> Result<()> {
    let is_npy = a
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let image = if is_npy {
        None
    } else {
        Some(vmunet_data::load_image(&a.input)?)
    };
    let mut session = a.engine.open(None)?;
    let arr = match &image {
        None => read_npy(&a.input)?,
        Some(img) => {
            let (height, width) = session.input_size(a.size)?;
            let pre = vmunet_data::Preprocess {
                height,
                width,
                channels: session.channels(),
            };
            let t = vmunet_data::preprocess(img, &pre);
            vmunet_data::Array {
                shape: vec![1, t.channels, t.height, t.width],
                data: t.data,
            }
        }
    };
    if arr.shape.len() != 4 {
        anyhow::bail!(
            "{}: expected a 4-D NCHW array, got shape {:?}",
            a.input.display(),
            arr.shape
        );
    }
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
