//! `vmunet parity`: a reference (the checkpoint in burn, or tract) against every available
//! runtime on the exported file. The comparison is `vmunet_runtime::check_parity`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use vmunet_runtime::{check_export, ParityJob};

#[cfg(feature = "full")]
use crate::args::SourceArgs;

/// Arguments of `vmunet parity`.
#[derive(clap::Args)]
pub struct Args {
    /// The reference: a checkpoint (or preset) run in burn. Without one, tract is the
    /// reference and ONNX Runtime is compared with it.
    #[cfg(feature = "full")]
    #[command(flatten)]
    source: SourceArgs,
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

/// Runs `vmunet parity`.
pub fn run(a: Args) -> Result<()> {
    let job = ParityJob {
        model: a.model.clone(),
        random: a.random,
        images: a.images.clone(),
        max_images: a.max_images,
        size: a.size,
        threshold: a.threshold,
        ort_library: None,
    };
    #[cfg(feature = "full")]
    let reference = match a.source.source() {
        Some(source) => {
            let loaded = source.load()?;
            let rt = vmunet_runtime::BurnRuntime::new(loaded.model);
            Some((
                Box::new(rt) as Box<dyn vmunet_runtime::Runtime>,
                loaded.label,
            ))
        }
        None => None,
    };
    #[cfg(not(feature = "full"))]
    let reference = None;
    let report = check_export(&job, reference)?;
    println!(
        "parity: {} vs {} ({} inputs: {} random, {} images)",
        a.model.display(),
        report.reference,
        report.inputs.len(),
        a.random,
        report.inputs.len() - a.random
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
