//! `vmunet init`: a freshly initialised model saved as a checkpoint (official initialisation).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::Backend;
use vmunet_model::{checkpoint, CpuBackend};

use vmunet_model::Preset;

/// Arguments of `vmunet init`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration.
    #[arg(long, value_enum, default_value_t = Preset::Paper)]
    preset: Preset,
    /// Output classes.
    #[arg(long, default_value_t = 1)]
    num_classes: usize,
    /// Random seed for the initial weights.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output checkpoint (.bpk, the project's burn record with official key names).
    #[arg(short, long, value_name = "FILE.bpk")]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let device = Default::default();
    CpuBackend::seed(&device, a.seed);
    let model = a.preset.config(a.num_classes).init::<CpuBackend>(&device)?;
    checkpoint::save(&model, &a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "wrote {} ({} preset, {} parameters, seed {})",
        a.output.display(),
        a.preset,
        vmunet_model::format_count(model.num_params()),
        a.seed
    );
    Ok(())
}
