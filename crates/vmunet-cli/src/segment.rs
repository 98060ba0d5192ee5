//! `vmunet segment`: images in, masks and overlays out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use image::DynamicImage;
use vmunet_data::{
    load_image, mask_from_probabilities, overlay, preprocess, save_png_atomic, Preprocess,
};
use vmunet_model::CpuBackend;

use crate::util::{ensure_dir, ModelSource};

/// Arguments of `vmunet segment`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: ModelSource,
    /// Images (any format the `image` crate decodes) or folders of images.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<PathBuf>,
    /// Output folder for NAME_mask.png and NAME_overlay.png.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model input size (H = W, a multiple of 32).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Foreground threshold on the probability (one-class models).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
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

pub fn run(a: Args) -> Result<()> {
    let images = collect_images(&a.images)?;
    // Decode everything first: a bad image stops the run before any output is written.
    let decoded: Vec<(PathBuf, DynamicImage)> = images
        .into_iter()
        .map(|p| load_image(&p).map(|img| (p, img)))
        .collect::<Result<_, _>>()?;
    let loaded = a.source.load()?;
    let model = &loaded.model;
    let pre = Preprocess {
        height: a.size,
        width: a.size,
        channels: loaded.config.input_channels,
    };
    model.check_input([1, pre.channels, a.size, a.size])?;
    ensure_dir(&a.out)?;
    let device = Default::default();
    let classes = loaded.config.num_classes;
    for (path, img) in &decoded {
        let t0 = Instant::now();
        let t = preprocess(img, &pre);
        let x = Tensor::<CpuBackend, 4>::from_data(
            TensorData::new(t.data, [1, t.channels, t.height, t.width]),
            &device,
        );
        let probs = model
            .forward_probabilities(x)?
            .into_data()
            .into_vec::<f32>()
            .context("reading probabilities")?;
        let mask = mask_from_probabilities(
            &probs,
            classes,
            (a.size, a.size),
            (img.height() as usize, img.width() as usize),
            a.threshold,
        );
        let name = stem(path);
        let mask_path = a.out.join(format!("{name}_mask.png"));
        let overlay_path = a.out.join(format!("{name}_overlay.png"));
        save_png_atomic(&DynamicImage::ImageLuma8(mask.to_image()), &mask_path)?;
        save_png_atomic(&DynamicImage::ImageRgb8(overlay(img, &mask)), &overlay_path)?;
        println!(
            "{}: {}x{} -> {} (foreground {:.1}%, {:.2} s)",
            path.display(),
            img.width(),
            img.height(),
            mask_path.display(),
            100.0 * mask.foreground_fraction(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
