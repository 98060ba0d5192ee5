//! numpy arrays handed over as raw views (`__array_interface__`'s data address, a shape and an
//! element type): the abi3 wheel supports CPython 3.10, whose limited API has no buffer
//! protocol. The package makes every array C-contiguous, aligned and native-endian, checks
//! its type and keeps it alive for the call; this side copies it once, into the runtime's
//! tensor or the decoder's image, while the GIL is held.

use pyo3::prelude::*;

use crate::error;

/// The element types `Session.run` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// float32.
    F32,
    /// float16 (widened to float32 for the runtime, narrowed back on the way out).
    F16,
}

impl Elem {
    /// Reads numpy's dtype name.
    pub fn parse(dtype: &str) -> PyResult<Self> {
        match dtype {
            "float32" => Ok(Elem::F32),
            "float16" => Ok(Elem::F16),
            other => Err(error::input(format!(
                "expected a float32 or float16 array, got {other}"
            ))),
        }
    }
}

/// The element count of `shape`, refusing a null address for a non-empty array and sizes
/// that overflow.
fn count(address: usize, shape: &[usize], elem_bytes: usize) -> PyResult<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| {
            n.checked_mul(elem_bytes)
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| error::input(format!("array shape {shape:?} is too large")))?;
    if n > 0 && address == 0 {
        return Err(error::input("array has no data (null address)"));
    }
    if !address.is_multiple_of(elem_bytes) {
        return Err(error::input("array data is not aligned"));
    }
    Ok(n)
}

/// Copies the C-contiguous array at `address` (`shape`, `elem`) into float32 values.
pub fn read_f32(address: usize, shape: &[usize], elem: Elem) -> PyResult<Vec<f32>> {
    Ok(match elem {
        Elem::F32 => {
            let n = count(address, shape, 4)?;
            if n == 0 {
                return Ok(Vec::new());
            }
            // SAFETY: the package passes the data address of a live, C-contiguous, aligned
            // float32 array of exactly `shape` (checked on the Python side: dtype, flags) and
            // holds a reference to it for the duration of this call, which keeps the GIL.
            unsafe { std::slice::from_raw_parts(address as *const f32, n) }.to_vec()
        }
        Elem::F16 => {
            let n = count(address, shape, 2)?;
            if n == 0 {
                return Ok(Vec::new());
            }
            // SAFETY: as above, for a float16 array (read as its bit patterns).
            unsafe { std::slice::from_raw_parts(address as *const u16, n) }
                .iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect()
        }
    })
}

/// Copies the C-contiguous uint8 image at `address` (height x width x channels, or height x
/// width) into a decoded image: grey, RGB or RGBA.
pub fn read_image(address: usize, shape: &[usize]) -> PyResult<image::DynamicImage> {
    let (h, w, c) = match shape {
        [h, w] => (*h, *w, 1),
        [h, w, c] => (*h, *w, *c),
        _ => {
            return Err(error::input(format!(
                "expected an image array of shape (height, width, channels) or (height, width), got {shape:?}"
            )))
        }
    };
    if h == 0 || w == 0 {
        return Err(error::input(format!("image array {shape:?} is empty")));
    }
    let (Ok(hu), Ok(wu)) = (u32::try_from(h), u32::try_from(w)) else {
        return Err(error::input(format!("image array {shape:?} is too large")));
    };
    let n = count(address, shape, 1)?;
    // SAFETY: the package passes the data address of a live, C-contiguous uint8 array of
    // exactly `shape` and holds it for the call.
    let pixels = unsafe { std::slice::from_raw_parts(address as *const u8, n) }.to_vec();
    let img = match c {
        1 => image::GrayImage::from_raw(wu, hu, pixels).map(image::DynamicImage::ImageLuma8),
        3 => image::RgbImage::from_raw(wu, hu, pixels).map(image::DynamicImage::ImageRgb8),
        4 => image::RgbaImage::from_raw(wu, hu, pixels).map(image::DynamicImage::ImageRgba8),
        _ => {
            return Err(error::input(format!(
                "expected 1, 3 or 4 channels (grey, RGB, RGBA), got {c} (shape {shape:?})"
            )))
        }
    };
    img.ok_or_else(|| error::input(format!("image array {shape:?} does not hold its pixels")))
}
