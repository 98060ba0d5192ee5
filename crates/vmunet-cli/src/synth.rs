//! `vmunet synth-isic`: a generated lesion set in the ISIC layout (for demos and tests).

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Arguments of `vmunet synth-isic`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (train/images, train/masks, val/images, val/masks).
    #[arg(long)]
    out: PathBuf,
    /// Training pairs.
    #[arg(long, default_value_t = 400)]
    train: usize,
    /// Validation pairs.
    #[arg(long, default_value_t = 100)]
    val: usize,
    /// Image size (square).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Runs `vmunet synth-isic`.
pub fn run(a: Args) -> Result<()> {
    vmunet_data::write_synthetic_isic(&a.out, a.train, a.val, a.size, a.seed)
        .with_context(|| format!("writing a synthetic lesion set to {}", a.out.display()))?;
    println!(
        "{}: {} training and {} validation pairs at {}x{} (synthetic lesions)",
        a.out.display(),
        a.train,
        a.val,
        a.size,
        a.size
    );
    Ok(())
}
