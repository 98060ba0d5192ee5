//! `vmunet init`: a freshly initialised model saved as a checkpoint (official initialisation).

use std::path::PathBuf;

use anyhow::Result;
use vmunet_model::{format_count, init_checkpoint, Preset};

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

/// Runs `vmunet init`.
pub fn run(a: Args) -> Result<()> {
    let params = init_checkpoint(a.preset, a.num_classes, a.seed, &a.output)?;
    println!(
        "wrote {} ({} preset, {} parameters, seed {})",
        a.output.display(),
        a.preset,
        format_count(params),
        a.seed
    );
    Ok(())
}
