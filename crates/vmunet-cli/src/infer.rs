//! `vmunet infer` (alias `segment`): images in, masks, overlays and a timing CSV out, with any
//! runtime.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_data::{
    activate, load_image, mask_from_probabilities, overlay, preprocess, save_png_atomic,
    write_atomic, Array, Preprocess,
};

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

const IMAGE_EXTS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "gif"];

/// Expands folders (sorted, image extensions only) and checks that each file exists.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| IMAGE_EXTS.contains(&e.to_lowercase().as_str()))
                })
                .collect();
            if found.is_empty() {
                bail!(
                    "{}: the folder holds no images ({})",
                    p.display(),
                    IMAGE_EXTS.join(", ")
                );
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// One CSV row.
struct Timing {
    image: PathBuf,
    size: (u32, u32),
    pre: f64,
    infer: f64,
    post: f64,
    foreground: f64,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn run(a: Args) -> Result<()> {
    let images = collect_images(&a.images)?;
    // Two inputs with the same name would overwrite each other's outputs.
    let mut seen: HashMap<String, &PathBuf> = HashMap::new();
    for p in &images {
        if let Some(first) = seen.insert(stem(p), p) {
            bail!(
                "{} and {} would both write {}_mask.png: rename one or run them separately",
                first.display(),
                p.display(),
                stem(p)
            );
        }
    }
    // Decode everything first: a bad image stops the run before any output is written.
    let decoded: Vec<(PathBuf, DynamicImage)> = images
        .into_iter()
        .map(|p| load_image(&p).map(|img| (p, img)))
        .collect::<Result<_, _>>()?;
    let mut engine = a.engine.open()?;
    let (h, w) = engine.input_size(a.size)?;
    let pre = Preprocess {
        height: h,
        width: w,
        channels: engine.channels,
    };
    // A model that does not take this input fails here, before anything is written.
    engine
        .runtime
        .check(&[1, pre.channels, h, w])
        .with_context(|| format!("{} cannot run a {h}x{w} input", engine.label))?;
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
        let t0 = Instant::now();
        let t = preprocess(img, &pre);
        let x = Array {
            shape: vec![1, t.channels, t.height, t.width],
            data: t.data,
        };
        let t1 = Instant::now();
        let mut y = engine
            .runtime
            .run(&x)
            .with_context(|| format!("running the model on {}", path.display()))?;
        let t2 = Instant::now();
        activate(&mut y.data, &y.shape);
        let classes = y.shape.get(1).copied().unwrap_or(1);
        let mask = mask_from_probabilities(
            &y.data,
            classes,
            (h, w),
            (img.height() as usize, img.width() as usize),
            a.threshold,
        );
        let name = stem(path);
        let mask_path = a.out.join(format!("{name}_mask.png"));
        save_png_atomic(&DynamicImage::ImageLuma8(mask.to_image()), &mask_path)?;
        save_png_atomic(
            &DynamicImage::ImageRgb8(overlay(img, &mask)),
            &a.out.join(format!("{name}_overlay.png")),
        )?;
        let row = Timing {
            image: path.clone(),
            size: (img.width(), img.height()),
            pre: (t1 - t0).as_secs_f64(),
            infer: (t2 - t1).as_secs_f64(),
            post: t2.elapsed().as_secs_f64(),
            foreground: mask.foreground_fraction(),
        };
        bar.println(format!(
            "{}: {}x{} -> {} (foreground {:.1}%, model {:.3} s, total {:.3} s)",
            path.display(),
            row.size.0,
            row.size.1,
            mask_path.display(),
            100.0 * row.foreground,
            row.infer,
            row.pre + row.infer + row.post
        ));
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut csv = String::from(
        "image,width,height,preprocess_ms,inference_ms,postprocess_ms,total_ms,foreground_fraction\n",
    );
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{:.6}",
            csv_field(&r.image.display().to_string()),
            r.size.0,
            r.size.1,
            r.pre * 1e3,
            r.infer * 1e3,
            r.post * 1e3,
            (r.pre + r.infer + r.post) * 1e3,
            r.foreground
        );
    }
    let csv_path = a.csv.clone().unwrap_or_else(|| a.out.join("timing.csv"));
    write_atomic(&csv_path, csv.as_bytes())?;
    let mean = rows.iter().map(|r| r.infer).sum::<f64>() / rows.len().max(1) as f64;
    println!(
        "{} images with {}: mean model time {:.3} s; masks and overlays in {}, timing in {}",
        rows.len(),
        engine.runtime.description(),
        mean,
        a.out.display(),
        csv_path.display()
    );
    Ok(())
}
