//! JPEG through libjpeg-turbo's TurboJPEG API: the decoder Pillow (and so the official
//! preprocessing) uses, with the same settings (accurate integer DCT, fancy upsampling), so a
//! photo reaches the model with the pixels the official code gives it. Also the fastest JPEG
//! decoder on x86 (SSE2/AVX2) and aarch64 (NEON).

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

use crate::DataError;

/// The most scans a progressive JPEG may have; libjpeg-turbo's advice against files made of
/// thousands of tiny scans that take minutes to decode (a denial of service).
const SCAN_LIMIT: u32 = 500;

/// Decodes `bytes` (a JPEG that passed the structural check) to RGB, or grey for a greyscale
/// JPEG. `None` for colour spaces Pillow converts differently (CMYK, YCCK): the caller's
/// general decoder takes those.
pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<Option<DynamicImage>, DataError> {
    let err = |e: turbojpeg::Error| DataError::Image {
        path: path.to_path_buf(),
        reason: format!("the JPEG decoder (libjpeg-turbo) failed: {e}"),
    };
    let mut d = Decompressor::new().map_err(err)?;
    d.set_scan_limit(SCAN_LIMIT).map_err(err)?;
    let header = d.read_header(bytes).map_err(err)?;
    let (format, channels) = match header.colorspace {
        Colorspace::Gray => (PixelFormat::GRAY, 1),
        Colorspace::RGB | Colorspace::YCbCr => (PixelFormat::RGB, 3),
        _ => return Ok(None),
    };
    let (width, height) = (header.width, header.height);
    let too_big = || DataError::Image {
        path: path.to_path_buf(),
        reason: format!("{width}x{height} pixels do not fit in memory"),
    };
    let len = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(too_big)?;
    let mut pixels = vec![0u8; len];
    d.decompress(
        bytes,
        Image {
            pixels: pixels.as_mut_slice(),
            width,
            pitch: width * channels,
            height,
            format,
        },
    )
    .map_err(err)?;
    let (w, h) = (
        u32::try_from(width).map_err(|_| too_big())?,
        u32::try_from(height).map_err(|_| too_big())?,
    );
    let img = if channels == 1 {
        GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    img.map(Some).ok_or_else(too_big)
}
