//! Small synthetic datasets in the official layouts, for demos and tests when real data is
//! absent. Deterministic in the seed.

use std::path::Path;

use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::augment::sample_seed;
use crate::dataset::synapse::{write_slice_npz, LIST_DIR};
use crate::{write_atomic, DataError};

fn create_dir(path: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn encode_png(path: &Path, img: impl Into<image::DynamicImage>) -> Result<(), DataError> {
    let mut buf = Vec::new();
    img.into()
        .write_to(&mut std::io::Cursor::new(&mut buf), ImageFormat::Png)
        .map_err(|e| DataError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &buf)
}

/// An irregular ellipse: centre, radii, tilt and two boundary wobbles.
struct Blob {
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
    tilt: f64,
    wobble: [(f64, f64, f64); 2],
}

impl Blob {
    fn random(rng: &mut StdRng, w: f64, h: f64, min: f64, max: f64) -> Self {
        let s = w.min(h);
        Self {
            cx: w * rng.random_range(0.35..0.65),
            cy: h * rng.random_range(0.35..0.65),
            rx: s * rng.random_range(min..max),
            ry: s * rng.random_range(min..max),
            tilt: rng.random_range(0.0..std::f64::consts::PI),
            wobble: [
                (
                    rng.random_range(0.05..0.18),
                    3.0,
                    rng.random_range(0.0..6.3),
                ),
                (
                    rng.random_range(0.02..0.08),
                    5.0,
                    rng.random_range(0.0..6.3),
                ),
            ],
        }
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        let (s, c) = self.tilt.sin_cos();
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (u, v) = ((c * dx + s * dy) / self.rx, (-s * dx + c * dy) / self.ry);
        let theta = v.atan2(u);
        let edge: f64 = 1.0
            + self
                .wobble
                .iter()
                .map(|(a, k, p)| a * (k * theta + p).sin())
                .sum::<f64>();
        (u * u + v * v).sqrt() < edge
    }
}

/// Writes a synthetic lesion set in the ISIC layout (`root/{train,val}/{images,masks}`):
/// `size x size` RGB PNG images (skin-coloured, noisy background with a darker irregular
/// ellipse as the lesion) named `synth_NNNNN.png`, and 0/255 grey PNG masks named
/// `synth_NNNNN_segmentation.png`.
pub fn write_synthetic_isic(
    root: &Path,
    train: usize,
    val: usize,
    size: usize,
    seed: u64,
) -> Result<(), DataError> {
    let side = u32::try_from(size).map_err(|_| DataError::Format {
        path: root.to_path_buf(),
        reason: format!("image size {size} is too large"),
    })?;
    for (split, count, tag) in [("train", train, 0u64), ("val", val, 1u64)] {
        let img_dir = root.join(split).join("images");
        let msk_dir = root.join(split).join("masks");
        create_dir(&img_dir)?;
        create_dir(&msk_dir)?;
        for i in 0..count {
            let mut rng = StdRng::seed_from_u64(sample_seed(seed, tag, i as u64));
            let (w, h) = (size as f64, size as f64);
            let blob = Blob::random(&mut rng, w, h, 0.12, 0.32);
            let skin = [
                rng.random_range(195.0..235.0),
                rng.random_range(145.0..185.0),
                rng.random_range(125.0..165.0),
            ];
            let lesion = [
                rng.random_range(70.0..130.0),
                rng.random_range(40.0..80.0),
                rng.random_range(30.0..65.0),
            ];
            let mut img = RgbImage::new(side, side);
            let mut msk = GrayImage::new(side, side);
            for y in 0..side {
                for x in 0..side {
                    let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                    let inside = blob.contains(fx, fy);
                    // Gentle vignette plus per-pixel noise.
                    let r2 = ((fx - w / 2.0).powi(2) + (fy - h / 2.0).powi(2)) / (w * w);
                    let shade = 1.0 - 0.25 * r2;
                    let base = if inside { lesion } else { skin };
                    let noise: f64 = rng.random_range(-10.0..10.0);
                    let px = base.map(|c| (c * shade + noise).clamp(0.0, 255.0) as u8);
                    img.put_pixel(x, y, Rgb(px));
                    msk.put_pixel(x, y, Luma([if inside { 255 } else { 0 }]));
                }
            }
            let name = format!("synth_{i:05}");
            encode_png(&img_dir.join(format!("{name}.png")), img)?;
            encode_png(&msk_dir.join(format!("{name}_segmentation.png")), msk)?;
        }
    }
    Ok(())
}

/// One synthetic CT-like slice: a body ellipse with up to eight labelled organ blobs.
fn synapse_slice(rng: &mut StdRng, size: usize) -> (Vec<f32>, Vec<f32>) {
    let s = size as f64;
    let body = Blob::random(rng, s, s, 0.38, 0.45);
    let mut organs: Vec<(Blob, f32, f32)> = Vec::new();
    for c in 1..=8u8 {
        if rng.random_bool(0.6) {
            let b = Blob::random(rng, s, s, 0.04, 0.12);
            organs.push((b, f32::from(c), rng.random_range(0.45..0.95f32)));
        }
    }
    let mut image = vec![0f32; size * size];
    let mut label = vec![0f32; size * size];
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let k = y * size + x;
            if body.contains(fx, fy) {
                image[k] = 0.3;
            }
            for (b, c, v) in &organs {
                if b.contains(fx, fy) {
                    image[k] = *v;
                    label[k] = *c;
                }
            }
            image[k] = (image[k] + rng.random_range(-0.03..0.03f32)).clamp(0.0, 1.0);
        }
    }
    (image, label)
}

/// Writes a synthetic Synapse set in TransUNet's layout: `slices` training slices
/// (`train_npz/case0000_sliceNNN.npz`), `volumes` test volumes of `depth` slices
/// (`test_vol_h5/caseNNNN.npy.h5`, only with the `hdf5` feature) and both list files, all
/// `size x size`, images in [0, 1], labels 0..=8.
pub fn write_synthetic_synapse(
    root: &Path,
    slices: usize,
    volumes: usize,
    depth: usize,
    size: usize,
    seed: u64,
) -> Result<(), DataError> {
    let npz_dir = root.join("train_npz");
    let list_dir = root.join(LIST_DIR);
    create_dir(&npz_dir)?;
    create_dir(&list_dir)?;
    let mut names = String::new();
    for i in 0..slices {
        let mut rng = StdRng::seed_from_u64(sample_seed(seed, 10, i as u64));
        let (image, label) = synapse_slice(&mut rng, size);
        let name = format!("case0000_slice{i:03}");
        write_slice_npz(
            &npz_dir.join(format!("{name}.npz")),
            &image,
            &label,
            size,
            size,
        )?;
        names.push_str(&name);
        names.push('\n');
    }
    write_atomic(&list_dir.join("train.txt"), names.as_bytes())?;
    #[cfg(feature = "hdf5")]
    {
        let h5_dir = root.join("test_vol_h5");
        create_dir(&h5_dir)?;
        let mut cases = String::new();
        for v in 0..volumes {
            let mut vol = crate::Volume {
                name: format!("case{:04}", v + 1),
                image: Vec::with_capacity(depth * size * size),
                label: Vec::with_capacity(depth * size * size),
                depth,
                height: size,
                width: size,
            };
            for d in 0..depth {
                let mut rng = StdRng::seed_from_u64(sample_seed(seed, 20 + v as u64, d as u64));
                let (image, label) = synapse_slice(&mut rng, size);
                vol.image.extend(image);
                vol.label.extend(label);
            }
            let path = h5_dir.join(format!("{}.npy.h5", vol.name));
            crate::dataset::synapse::write_volume_h5(&path, &vol)?;
            cases.push_str(&vol.name);
            cases.push('\n');
        }
        write_atomic(&list_dir.join("test_vol.txt"), cases.as_bytes())?;
    }
    #[cfg(not(feature = "hdf5"))]
    let _ = (volumes, depth);
    Ok(())
}
