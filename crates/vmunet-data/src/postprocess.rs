//! Probabilities to masks and overlays at the original image size.

use std::path::Path;

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};

use crate::{resize_bilinear, DataError};

/// A per-pixel class map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Class index per pixel, row-major (0 = background).
    pub data: Vec<u8>,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Number of classes the model predicts (1 = binary).
    pub classes: usize,
}

impl Mask {
    /// Fraction of pixels that are foreground (class > 0).
    pub fn foreground_fraction(&self) -> f64 {
        self.data.iter().filter(|&&v| v > 0).count() as f64 / self.data.len().max(1) as f64
    }

    /// Grey PNG image: binary masks as {0, 255}, multi-class masks as class indices.
    pub fn to_image(&self) -> GrayImage {
        let scale = if self.classes == 1 { 255 } else { 1 };
        GrayImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            Luma([self.data[y as usize * self.width + x as usize] * scale])
        })
    }
}

/// Turns NCHW logits `(N, classes, H, W)` into probabilities in place: sigmoid for one
/// class, softmax over the class axis otherwise (the model's own activation).
pub fn activate(logits: &mut [f32], shape: &[usize]) {
    let (n, k) = (
        shape.first().copied().unwrap_or(1),
        shape.get(1).copied().unwrap_or(1),
    );
    if k <= 1 {
        logits
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        return;
    }
    let hw = logits.len() / (n * k).max(1);
    for sample in logits.chunks_mut(k * hw) {
        for p in 0..hw {
            let max = (0..k)
                .map(|c| sample[c * hw + p])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for c in 0..k {
                let e = (sample[c * hw + p] - max).exp();
                sample[c * hw + p] = e;
                sum += e;
            }
            for c in 0..k {
                sample[c * hw + p] /= sum;
            }
        }
    }
}

/// Resizes probabilities `(classes, h, w)` to `out` bilinearly, then thresholds (one class,
/// `p >= threshold`) or takes the arg-max (several classes).
pub fn mask_from_probabilities(
    probs: &[f32],
    classes: usize,
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
    threshold: f32,
) -> Mask {
    let p = resize_bilinear(probs, classes, (h, w), (out_h, out_w));
    let n = out_h * out_w;
    let data = if classes == 1 {
        p.iter().map(|&v| u8::from(v >= threshold)).collect()
    } else {
        (0..n)
            .map(|i| {
                (0..classes)
                    .max_by(|&a, &b| p[a * n + i].total_cmp(&p[b * n + i]))
                    .unwrap_or(0) as u8
            })
            .collect()
    };
    Mask {
        data,
        width: out_w,
        height: out_h,
        classes,
    }
}

const PALETTE: [[u8; 3]; 8] = [
    [255, 40, 40],
    [40, 220, 40],
    [60, 110, 255],
    [255, 220, 0],
    [255, 0, 255],
    [0, 230, 230],
    [255, 140, 0],
    [160, 80, 255],
];

/// The image with the mask tinted (alpha 0.4) and its boundary drawn solid.
pub fn overlay(img: &DynamicImage, mask: &Mask) -> RgbImage {
    let mut out = img.to_rgb8();
    let (w, h) = (mask.width, mask.height);
    let at = |x: usize, y: usize| mask.data[y * w + x];
    for y in 0..h {
        for x in 0..w {
            let c = at(x, y);
            if c == 0 {
                continue;
            }
            let col = PALETTE[(c as usize - 1) % PALETTE.len()];
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || at(x - 1, y) != c
                || at(x + 1, y) != c
                || at(x, y - 1) != c
                || at(x, y + 1) != c;
            let p = out.get_pixel_mut(x as u32, y as u32);
            *p = if edge {
                Rgb(col)
            } else {
                Rgb(std::array::from_fn(|i| {
                    (0.6 * p.0[i] as f32 + 0.4 * col[i] as f32).round() as u8
                }))
            };
        }
    }
    out
}

/// Encodes `img` as PNG (`path`, the file it is for, names it in errors).
pub fn encode_png(img: &DynamicImage, path: &Path) -> Result<Vec<u8>, DataError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            reason: format!("cannot encode PNG: {e}"),
        })?;
    Ok(buf.into_inner())
}

/// Encodes `img` as PNG and writes it durably ([`vmunet_fs::write_durable`]).
pub fn save_png_atomic(img: &DynamicImage, path: &Path) -> Result<(), DataError> {
    Ok(vmunet_fs::write_durable(path, &encode_png(img, path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations() {
        let mut x = vec![0.0, 2.0];
        activate(&mut x, &[1, 1, 1, 2]);
        assert!((x[0] - 0.5).abs() < 1e-6 && (x[1] - 0.880_797).abs() < 1e-5);
        // Two samples, two classes, one pixel each.
        let mut y = vec![1.0, 1.0, 0.0, 3.0_f32.ln()];
        activate(&mut y, &[2, 2, 1, 1]);
        assert!((y[0] - 0.5).abs() < 1e-6 && (y[1] - 0.5).abs() < 1e-6);
        assert!((y[2] - 0.25).abs() < 1e-6 && (y[3] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn threshold_and_argmax() {
        let probs = [0.2, 0.5, 0.7, 0.49];
        let m = mask_from_probabilities(&probs, 1, (2, 2), (2, 2), 0.5);
        assert_eq!(m.data, vec![0, 1, 1, 0]);
        assert_eq!(m.to_image().into_raw(), vec![0, 255, 255, 0]);
        let probs = [0.1, 0.8, 0.3, 0.6, 0.1, 0.7, 0.3, 0.1, 0.9];
        let m = mask_from_probabilities(&probs, 3, (1, 3), (1, 3), 0.5);
        assert_eq!(m.data, vec![1, 0, 2]);
    }

    #[test]
    fn upscaled_mask_keeps_the_region() {
        // Left half foreground at 4x4, resized to 8x16.
        let probs: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 0.9 } else { 0.1 }).collect();
        let m = mask_from_probabilities(&probs, 1, (4, 4), (8, 16), 0.5);
        assert_eq!((m.width, m.height), (16, 8));
        assert!((m.foreground_fraction() - 0.5).abs() < 1e-9);
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 8, Rgb([0, 0, 0])));
        let o = overlay(&img, &m);
        assert_eq!(o.get_pixel(0, 0).0, PALETTE[0]);
        assert_eq!(o.get_pixel(15, 4).0, [0, 0, 0]);
    }
}
