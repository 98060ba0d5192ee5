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
/// [0, 255], then antialiased bilinear resize to the model size.
///
/// 8-bit images (every photo) take the fast path: the extremes are found on the bytes, the
/// bytes are resized with SIMD (`fast_image_resize`'s convolution, Pillow's filter) and only
/// the model-sized result is rescaled. Rescaling is affine and the filter's weights sum to
/// one, so this is the official order of operations up to rounding the resized values to
/// whole bytes. Other pixel types (16-bit, float) are converted to float first.
pub fn preprocess(img: &DynamicImage, p: &Preprocess) -> ImageTensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let fast = match (img, p.channels) {
        (DynamicImage::ImageRgb8(rgb), 3) => preprocess_u8(rgb.as_raw(), 3, (h, w), p),
        (DynamicImage::ImageLuma8(g), 1) => preprocess_u8(g.as_raw(), 1, (h, w), p),
        // A grey photo for an RGB model: three equal planes.
        (DynamicImage::ImageLuma8(g), 3) => preprocess_u8(g.as_raw(), 1, (h, w), p).map(|t| {
            let mut data = Vec::with_capacity(3 * t.data.len());
            (0..3).for_each(|_| data.extend_from_slice(&t.data));
            ImageTensor {
                data,
                channels: 3,
                ..t
            }
        }),
        // `convert('RGB')`: alpha dropped.
        (DynamicImage::ImageRgba8(_) | DynamicImage::ImageLumaA8(_), 3) => {
            preprocess_u8(img.to_rgb8().as_raw(), 3, (h, w), p)
        }
        _ => None,
    };
    fast.unwrap_or_else(|| preprocess_f32(img, p))
}

/// The fast path of [`preprocess`] on interleaved bytes; `None` when the resizer refuses the
/// sizes (the float path then runs).
fn preprocess_u8(
    bytes: &[u8],
    channels: usize,
    (h, w): (usize, usize),
    p: &Preprocess,
) -> Option<ImageTensor> {
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions};
    let (lo, hi) = bytes
        .chunks(4096)
        .map(|c| {
            c.iter()
                .fold((u8::MAX, u8::MIN), |(a, b), &v| (a.min(v), b.max(v)))
        })
        .fold((u8::MAX, u8::MIN), |(a, b), (c, d)| (a.min(c), b.max(d)));
    let (out_h, out_w) = (p.height, p.width);
    let n = out_h * out_w;
    if hi <= lo {
        return Some(ImageTensor {
            data: vec![0.0; channels * n],
            channels,
            height: out_h,
            width: out_w,
        });
    }
    let pixel = if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    };
    let resized;
    let small: &[u8] = if (h, w) == (out_h, out_w) {
        bytes
    } else {
        let size = |v: usize| u32::try_from(v).ok();
        let src =
            fast_image_resize::images::ImageRef::new(size(w)?, size(h)?, bytes, pixel).ok()?;
        let mut dst = Image::new(size(out_w)?, size(out_h)?, pixel);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        fast_image_resize::Resizer::new()
            .resize(&src, &mut dst, &options)
            .ok()?;
        resized = dst.into_vec();
        &resized
    };
    let scale = 255.0 / f32::from(hi - lo);
    let lo = f32::from(lo);
    let mut data = vec![0f32; channels * n];
    for (i, px) in small.chunks_exact(channels).enumerate().take(n) {
        for (c, &v) in px.iter().enumerate() {
            data[c * n + i] = (f32::from(v) - lo) * scale;
        }
    }
    Some(ImageTensor {
        data,
        channels,
        height: out_h,
        width: out_w,
    })
}

/// [`preprocess`] in float throughout (the official order: rescale, then resize), for pixel
/// types other than 8-bit.
fn preprocess_f32(img: &DynamicImage, p: &Preprocess) -> ImageTensor {
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
