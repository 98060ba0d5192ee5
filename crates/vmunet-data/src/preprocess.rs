//! Image decoding and the official VM-UNet test-time preprocessing.
//!
//! The official transform is `myNormalize` -> `myToTensor` -> `myResize`. `myNormalize`
//! standardises with the dataset's mean/std and then rescales each image jointly over all
//! channels to [0, 255]; the affine standardisation cancels in the min-max step, so the result
//! is the per-image min-max rescale of the raw pixels. `myResize` is a bilinear resize of the
//! float tensor (torchvision, antialiased).

use image::DynamicImage;

pub use crate::decode::load_image;
use crate::resize_bilinear;

/// A planar (CHW) float image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTensor {
    /// Values, CHW.
    pub data: Vec<f32>,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// Preprocessing parameters (recorded with exported models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// Model input height.
    pub height: usize,
    /// Model input width.
    pub width: usize,
    /// Model input channels (3: RGB, 1: grey).
    pub channels: usize,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            height: 256,
            width: 256,
            channels: 3,
        }
    }
}

/// The official preprocessing: per-image min-max rescale of all channels jointly to
/// [0, 255], then bilinear resize to the model size.
pub fn preprocess(img: &DynamicImage, p: &Preprocess) -> ImageTensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (data, channels) = if p.channels == 1 {
        (img.to_luma32f().into_raw(), 1)
    } else {
        (img.to_rgb32f().into_raw(), 3)
    };
    // to_*32f gives [0, 1]; the min-max rescale makes the scale irrelevant.
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let range = hi - lo;
    let mut planar = vec![0f32; data.len()];
    for (i, px) in data.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            planar[c * h * w + i] = if range > 0.0 {
                (v - lo) / range * 255.0
            } else {
                0.0
            };
        }
    }
    let data = resize_bilinear(&planar, channels, (h, w), (p.height, p.width));
    ImageTensor {
        data,
        channels,
        height: p.height,
        width: p.width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn min_max_over_all_channels_then_resize() {
        let mut img = RgbImage::new(64, 32);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = Rgb([50 + (x % 7) as u8, 60 + (y % 5) as u8, 100]);
        }
        let t = preprocess(&DynamicImage::ImageRgb8(img), &Preprocess::default());
        assert_eq!((t.channels, t.height, t.width), (3, 256, 256));
        let (lo, hi) = t
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        // Blue is the joint maximum (100 -> 255), red's 50 the minimum (-> 0).
        assert!(lo.abs() < 1e-3 && (hi - 255.0).abs() < 1e-3, "{lo} {hi}");
        assert!(t.data[2 * 256 * 256..]
            .iter()
            .all(|v| (v - 255.0).abs() < 1e-3));
    }

    #[test]
    fn constant_image_gives_zeros_and_bad_file_is_named() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(32, 32, Rgb([9, 9, 9])));
        let t = preprocess(&img, &Preprocess::default());
        assert!(t.data.iter().all(|v| *v == 0.0));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = load_image(&p).unwrap_err().to_string();
        assert!(e.contains("broken.png") && e.contains("decode"), "{e}");
    }
}
