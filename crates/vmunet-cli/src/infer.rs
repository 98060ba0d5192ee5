//! `vmunet infer` (alias `segment`): images in, masks, overlays and a timing CSV out, with any
//! runtime. The pipeline is `vmunet_runtime::Segmenter`; this file parses and prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_data::write_atomic;
use vmunet_runtime::{timing_csv, ImageSet, Runtime, Segmenter, SegmenterOptions};

use crate::args::EngineArgs;

/// Arguments of `vmunet infer`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Images (any format the `image` crate decodes) or folders of images.
    #[arg(value_name = "IMAGE|DIR", required = true)]
    images: Vec<PathBuf>,
    /// Output folder for NAME_mask.png, NAME_overlay.png and timing.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model input size (H = W, a multiple of 32); fixed-size ONNX models use their own.
    #[arg(long)]
    size: Option<usize>,
    /// Foreground threshold on the probability (one-class models).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Per-image timing CSV (default: OUT/timing.csv).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// Runs `vmunet infer`.
pub fn run(a: Args) -> Result<()> {
    // Decode everything first: a bad image stops the run before any output is written.
    let set = ImageSet::load(&a.images)?;
    let session = a.engine.open(None)?;
    let label = session.label().to_string();
    // A model that does not take this input fails here, before anything is written.
    let options = SegmenterOptions {
        size: a.size,
        threshold: a.threshold,
    };
    let mut segmenter = Segmenter::new(session, &options)
        .with_context(|| format!("{label} cannot run this input size"))?;
    let bar = ProgressBar::new(set.images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if set.images.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let rows = segmenter.segment_set(&set, &a.out, |row| {
        bar.println(format!(
            "{}: {}x{} -> {} (foreground {:.1}%, model {:.3} s, total {:.3} s)",
            row.image.display(),
            row.width,
            row.height,
            row.mask.display(),
            100.0 * row.foreground,
            row.timing.inference,
            row.timing.total()
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let csv_path = a.csv.clone().unwrap_or_else(|| a.out.join("timing.csv"));
    write_atomic(&csv_path, timing_csv(&rows).as_bytes())?;
    let mean = rows.iter().map(|r| r.timing.inference).sum::<f64>() / rows.len().max(1) as f64;
    println!(
        "{} images with {} in {}: mean model time {:.3} s; masks and overlays in {}, timing in {}",
        rows.len(),
        label,
        segmenter.session().description(),
        mean,
        a.out.display(),
        csv_path.display()
    );
    Ok(())
}
