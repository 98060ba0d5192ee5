//! `vmunet forward`: the tensor-level contract used by parity checks.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use vmunet_data::{read_npy, write_npy};
use vmunet_model::CpuBackend;

use crate::util::ModelSource;

/// Arguments of `vmunet forward`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: ModelSource,
    /// Input: float32 .npy, NCHW.
    #[arg(long, value_name = "IN.npy")]
    input: PathBuf,
    /// Output: float32 .npy, (N, classes, H, W).
    #[arg(long, value_name = "OUT.npy")]
    output: PathBuf,
    /// Write probabilities (sigmoid / softmax) instead of raw logits.
    #[arg(long)]
    probabilities: bool,
    /// Run an exported ONNX model instead of a checkpoint.
    #[arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])]
    model: Option<PathBuf>,
    /// Runtime for --model.
    #[arg(long, default_value = "tract", requires = "model")]
    runtime: vmunet_runtime::RuntimeKind,
    /// Device profile (devices/*.toml) choosing runtime, providers, precision and threads.
    #[arg(
        long,
        value_name = "PROFILE.toml",
        requires = "model",
        conflicts_with = "runtime"
    )]
    profile: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let arr = read_npy(&a.input)?;
    let shape: [usize; 4] = match arr.shape.as_slice() {
        [n, c, h, w] => [*n, *c, *h, *w],
        s => bail!(
            "{}: expected a 4-D NCHW array, got shape {s:?}",
            a.input.display()
        ),
    };
    if let Some(model) = &a.model {
        let mut rt = match &a.profile {
            Some(p) => {
                let profile = vmunet_runtime::DeviceProfile::load(p)?;
                vmunet_runtime::open_with_profile(model, &profile)?
            }
            None => vmunet_runtime::open(a.runtime, model)?,
        };
        let mut y = rt
            .run(&arr)
            .with_context(|| format!("running {} on {}", model.display(), a.input.display()))?;
        if a.probabilities {
            vmunet_data::activate(&mut y.data, &y.shape);
        }
        write_npy(&a.output, &y.shape, &y.data)?;
        eprintln!(
            "wrote {} {:?} with {}",
            a.output.display(),
            y.shape,
            rt.description()
        );
        return Ok(());
    }
    let loaded = a.source.load()?;
    loaded
        .model
        .check_input(shape)
        .with_context(|| format!("{} does not fit the model", a.input.display()))?;
    let device = Default::default();
    let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(arr.data, shape), &device);
    let y = if a.probabilities {
        loaded.model.forward_probabilities(x)?
    } else {
        loaded.model.forward(x)?
    };
    let dims = y.dims();
    let data = y
        .into_data()
        .into_vec::<f32>()
        .context("reading the output tensor")?;
    write_npy(&a.output, &dims, &data)?;
    eprintln!(
        "wrote {} {:?} ({})",
        a.output.display(),
        dims,
        if a.probabilities {
            "probabilities"
        } else {
            "logits"
        }
    );
    Ok(())
}
