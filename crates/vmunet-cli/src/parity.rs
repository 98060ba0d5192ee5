//! `vmunet parity`: a reference (the checkpoint in burn, or tract) against every available
//! runtime on the exported file. The comparison is `vmunet_runtime::check_parity`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use vmunet_data::image_files;
use vmunet_runtime::{
    check_parity, image_inputs, random_inputs, ModelDim, ModelFile, Runtime, RuntimeKind, Session,
    SessionOptions,
};

#[cfg(feature = "full")]
use crate::source::ModelSource;

/// Arguments of `vmunet parity`.
#[derive(clap::Args)]
pub struct Args {
    /// The reference: a checkpoint (or preset) run in burn. Without one, tract is the
    /// reference and ONNX Runtime is compared with it.
    #[cfg(feature = "full")]
    #[command(flatten)]
    source: ModelSource,
    /// The exported ONNX model to check.
    #[arg(long, value_name = "model.onnx")]
    model: PathBuf,
    /// Folder of real images to include (preprocessed as `segment` does).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// At most this many images from --images.
    #[arg(long, default_value_t = 8)]
    max_images: usize,
    /// Random input tensors to include.
    #[arg(long, default_value_t = 2)]
    random: usize,
    /// Fail (exit 1) when any runtime's max |logit diff| exceeds this.
    #[arg(long, default_value_t = 1e-4)]
    threshold: f32,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Input size (H = W) for models exported with --dynamic-hw.
    #[arg(long, default_value_t = 256)]
    size: usize,
}

/// The reference runtime and its label: burn on the checkpoint when one is given.
fn reference(a: &Args) -> Result<(Box<dyn Runtime>, String, bool)> {
    #[cfg(feature = "full")]
    if a.source.checkpoint.is_some() || a.source.preset.is_some() {
        let loaded = a.source.load()?;
        return Ok((
            Box::new(vmunet_runtime::BurnRuntime::new(loaded.model)),
            loaded.label,
            true,
        ));
    }
    let tract = Session::open(&a.model, &SessionOptions::default())?;
    let label = tract.description();
    Ok((Box::new(tract), label, false))
}

pub fn run(a: Args) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let dim = |i: usize| match file.input.dims.get(i) {
        Some(ModelDim::Fixed(v)) => Ok(*v),
        Some(ModelDim::Free(_)) if i >= 2 => Ok(a.size),
        _ => bail!("{}: input dimension {i} is not fixed", a.model.display()),
    };
    let (c, h, w) = (dim(1)?, dim(2)?, dim(3)?);
    // Inputs: seeded random tensors in the preprocessed range, then real images.
    let mut inputs = random_inputs(a.random, c, h, w);
    if let Some(dir) = &a.images {
        let files: Vec<PathBuf> = image_files(std::slice::from_ref(dir))?
            .into_iter()
            .take(a.max_images)
            .collect();
        inputs.extend(image_inputs(&files, c, h, w)?);
    }
    if inputs.is_empty() {
        bail!("no inputs: give --random N > 0 or --images DIR");
    }
    let (mut reference, label, burn) = reference(&a)?;
    let kinds: &[RuntimeKind] = if burn {
        &[RuntimeKind::Tract, RuntimeKind::Ort]
    } else {
        &[RuntimeKind::Ort]
    };
    let candidates = kinds
        .iter()
        .map(|&kind| {
            let opts = SessionOptions {
                runtime: Some(kind),
                ..Default::default()
            };
            let rt = Session::open(&a.model, &opts).map(|s| Box::new(s) as Box<dyn Runtime>);
            (kind.as_str().to_string(), rt)
        })
        .collect();
    let report = check_parity(
        &a.model.display().to_string(),
        &label,
        reference.as_mut(),
        candidates,
        &inputs,
        a.threshold,
    )?;
    println!(
        "parity: {} vs {} ({} inputs: {} random, {} images)",
        a.model.display(),
        label,
        inputs.len(),
        a.random,
        inputs.len() - a.random
    );
    print!("{}", report.markdown());
    if let Some(j) = &a.json {
        vmunet_data::write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if report.ran() == 0 {
        bail!("no runtime could run {}", a.model.display());
    }
    if !report.passed() {
        bail!(
            "parity failed: a runtime exceeds the max |logit diff| threshold {:e}",
            a.threshold
        );
    }
    Ok(())
}
