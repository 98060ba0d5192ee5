//! `vmunet infer` (alias `segment`): images in, masks, overlays and a timing CSV out, with any
//! runtime. The pipeline is `vmunet_runtime::Segmenter`; this file parses and prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_data::{check_unique_stems, image_files, load_image, write_atomic};
use vmunet_runtime::{timing_csv, Runtime, Segmenter, SegmenterOptions};

use crate::util::{ensure_dir, EngineArgs};

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

pub fn run(a: Args) -> Result<()> {
    let images = image_files(&a.images)?;
    // Two inputs with the same name would overwrite each other's outputs.
    check_unique_stems(&images)?;
    // Decode everything first: a bad image stops the run before any output is written.
    let decoded: Vec<(PathBuf, DynamicImage)> = images
        .into_iter()
        .map(|p| load_image(&p).map(|img| (p, img)))
        .collect::<Result<_, _>>()?;
    let session = a.engine.open(None)?;
    let label = session.label().to_string();
    // A model that does not take this input fails here, before anything is written.
    let mut segmenter = Segmenter::new(
        session,
        &SegmenterOptions {
            size: a.size,
            threshold: a.threshold,
        },
    )
    .with_context(|| format!("{label} cannot run this input size"))?;
    ensure_dir(&a.out)?;
    let bar = ProgressBar::new(decoded.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if decoded.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut rows = Vec::with_capacity(decoded.len());
    for (path, img) in &decoded {
        let row = segmenter.segment_to(path, img, &a.out)?;
        bar.println(format!(
            "{}: {}x{} -> {} (foreground {:.1}%, model {:.3} s, total {:.3} s)",
            path.display(),
            row.width,
            row.height,
            row.mask.display(),
            100.0 * row.foreground,
            row.timing.inference,
            row.timing.total()
        ));
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let csv_path = a.csv.clone().unwrap_or_else(|| a.out.join("timing.csv"));
    write_atomic(&csv_path, timing_csv(&rows).as_bytes())?;
    let mean = rows.iter().map(|r| r.timing.inference).sum::<f64>() / rows.len().max(1) as f64;
    println!(
        "{} images with {}: mean model time {:.3} s; masks and overlays in {}, timing in {}",
        rows.len(),
        segmenter.session().description(),
        mean,
        a.out.display(),
        csv_path.display()
    );
    Ok(())
}
