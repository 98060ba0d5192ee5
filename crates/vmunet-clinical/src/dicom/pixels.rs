//! Pixel data to numbers: native frames (8/16/32-bit, signed or not, grey or RGB, either
//! planar configuration) and 8-bit JPEG frames (libjpeg-turbo, as Pillow and pydicom decode
//! them). Values are the stored values; the caller applies the modality rescale.

use std::path::Path;

use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use image::{DynamicImage, RgbImage};

use super::attrs::Attrs;
use super::classes::{supported_transfer_syntaxes, transfer_syntax_name};
use crate::ClinicalError;

/// How an image's pixels are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelFormat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Frames.
    pub frames: usize,
    /// Samples per pixel: 1 (grey) or 3 (colour).
    pub samples: usize,
    /// Bits allocated per sample.
    pub bits_allocated: usize,
    /// Bits stored per sample.
    pub bits_stored: usize,
    /// Two's complement samples.
    pub signed: bool,
    /// Colour planes one after the other (planar configuration 1).
    pub planar: bool,
    /// Photometric interpretation.
    pub photometric: String,
}

impl PixelFormat {
    /// Reads the Image Pixel module of `a`.
    pub fn read(a: &Attrs) -> Result<Self, ClinicalError> {
        let rows = a.uint(tags::ROWS, "Rows")?;
        let cols = a.uint(tags::COLUMNS, "Columns")?;
        let frames = a
            .opt_int(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?
            .unwrap_or(1)
            .max(1) as usize;
        let samples = a
            .opt_int(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?
            .unwrap_or(1) as usize;
        let bits_allocated = a.uint(tags::BITS_ALLOCATED, "BitsAllocated")?;
        let bits_stored = a
            .opt_int(tags::BITS_STORED, "BitsStored")?
            .map_or(bits_allocated, |b| b as usize);
        let signed = a
            .opt_int(tags::PIXEL_REPRESENTATION, "PixelRepresentation")?
            .unwrap_or(0)
            == 1;
        let planar = a
            .opt_int(tags::PLANAR_CONFIGURATION, "PlanarConfiguration")?
            .unwrap_or(0)
            == 1;
        let photometric = a
            .opt_str(tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap_or_else(|| "MONOCHROME2".into());
        let f = Self {
            rows,
            cols,
            frames,
            samples,
            bits_allocated,
            bits_stored,
            signed,
            planar,
            photometric,
        };
        if rows == 0 || cols == 0 {
            return Err(ClinicalError::format(
                a.path,
                format!("the image is {cols}x{rows} pixels"),
            ));
        }
        if !matches!(samples, 1 | 3) {
            return Err(ClinicalError::unsupported(
                a.path,
                format!("{samples} samples per pixel (1 or 3 are read)"),
            ));
        }
        if !matches!(bits_allocated, 8 | 16 | 32)
            || bits_stored == 0
            || bits_stored > bits_allocated
        {
            return Err(ClinicalError::unsupported(
                a.path,
                format!(
                    "{bits_stored} bits stored in {bits_allocated} allocated (8, 16 or 32 allocated are read)"
                ),
            ));
        }
        Ok(f)
    }

    fn frame_bytes(&self) -> usize {
        self.rows * self.cols * self.samples * self.bits_allocated / 8
    }
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Grey stored values, row by row.
    Grey(Vec<f32>),
    /// A colour picture.
    Rgb(RgbImage),
}

/// Decodes every frame of `obj` (a full data set, with its pixel data), stored with the
/// transfer syntax `ts`.
pub fn decode_frames(
    obj: &InMemDicomObject,
    ts: &str,
    path: &Path,
) -> Result<(PixelFormat, Vec<Frame>), ClinicalError> {
    let a = Attrs::new(obj, path);
    let fmt = PixelFormat::read(&a)?;
    let elem = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| ClinicalError::format(path, "the data set has no pixel data (7FE0,0010)"))?;
    let frames = match ts {
        uids::EXPLICIT_VR_LITTLE_ENDIAN | uids::IMPLICIT_VR_LITTLE_ENDIAN => {
            let bytes = elem
                .to_bytes()
                .map_err(|e| ClinicalError::format(path, format!("unreadable pixel data: {e}")))?;
            let need = fmt.frame_bytes() * fmt.frames;
            if bytes.len() < need {
                return Err(ClinicalError::format(
                    path,
                    format!(
                        "the pixel data holds {} bytes, {} frame(s) of {}x{}x{} at {} bits need {need}",
                        bytes.len(),
                        fmt.frames,
                        fmt.cols,
                        fmt.rows,
                        fmt.samples,
                        fmt.bits_allocated
                    ),
                ));
            }
            (0..fmt.frames)
                .map(|f| {
                    native_frame(
                        &fmt,
                        &bytes[f * fmt.frame_bytes()..(f + 1) * fmt.frame_bytes()],
                        path,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        uids::JPEG_BASELINE8_BIT | uids::JPEG_EXTENDED12_BIT => {
            let fragments = elem.fragments().ok_or_else(|| {
                ClinicalError::format(
                    path,
                    "JPEG transfer syntax but the pixel data is not encapsulated",
                )
            })?;
            if fmt.bits_allocated != 8 {
                return Err(ClinicalError::unsupported(
                    path,
                    format!("{}-bit JPEG (8-bit JPEG is read)", fmt.bits_stored),
                ));
            }
            let streams = frame_streams(
                fragments,
                elem.offset_table().unwrap_or(&[]),
                fmt.frames,
                path,
            )?;
            streams
                .iter()
                .map(|s| jpeg_frame(&fmt, s, path))
                .collect::<Result<Vec<_>, _>>()?
        }
        other => {
            return Err(ClinicalError::unsupported(
                path,
                format!(
                    "pixel data in {} is not decoded (supported: {})",
                    transfer_syntax_name(other),
                    supported_transfer_syntaxes()
                ),
            ))
        }
    };
    Ok((fmt, frames))
}

/// The compressed stream of each frame: one frame takes every fragment; as many fragments
/// as frames is one each; else the basic offset table splits them.
fn frame_streams(
    fragments: &[Vec<u8>],
    offsets: &[u32],
    frames: usize,
    path: &Path,
) -> Result<Vec<Vec<u8>>, ClinicalError> {
    if fragments.is_empty() {
        return Err(ClinicalError::format(
            path,
            "the encapsulated pixel data has no fragment",
        ));
    }
    if frames == 1 {
        return Ok(vec![fragments.concat()]);
    }
    if fragments.len() == frames {
        return Ok(fragments.to_vec());
    }
    if offsets.len() == frames {
        // Offsets count from the first fragment's item tag: each item is 8 bytes + data.
        let mut starts = Vec::with_capacity(fragments.len());
        let mut at = 0u64;
        for f in fragments {
            starts.push(at);
            at += 8 + f.len() as u64;
        }
        let mut out = vec![Vec::new(); frames];
        for (fi, start) in starts.iter().enumerate() {
            let frame = offsets
                .iter()
                .rposition(|&o| u64::from(o) <= *start)
                .unwrap_or(0);
            out[frame].extend_from_slice(&fragments[fi]);
        }
        return Ok(out);
    }
    Err(ClinicalError::format(
        path,
        format!(
            "{} JPEG fragments for {frames} frames and no offset table to split them",
            fragments.len()
        ),
    ))
}

fn jpeg_frame(fmt: &PixelFormat, stream: &[u8], path: &Path) -> Result<Frame, ClinicalError> {
    let img = vmunet_data::decode_image(path, stream)?;
    if (img.width() as usize, img.height() as usize) != (fmt.cols, fmt.rows) {
        return Err(ClinicalError::format(
            path,
            format!(
                "the JPEG frame is {}x{}, the data set says {}x{}",
                img.width(),
                img.height(),
                fmt.cols,
                fmt.rows
            ),
        ));
    }
    Ok(match (fmt.samples, img) {
        (1, DynamicImage::ImageLuma8(g)) => {
            Frame::Grey(g.into_raw().into_iter().map(f32::from).collect())
        }
        (1, other) => Frame::Grey(
            other
                .to_luma8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
        ),
        (_, other) => Frame::Rgb(other.to_rgb8()),
    })
}

fn sample(fmt: &PixelFormat, bytes: &[u8], i: usize) -> f32 {
    let raw: u32 = match fmt.bits_allocated {
        8 => u32::from(bytes[i]),
        16 => u32::from(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])),
        _ => u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ]),
    };
    let bits = fmt.bits_stored as u32;
    let masked = if bits >= 32 {
        raw
    } else {
        raw & ((1u32 << bits) - 1)
    };
    if fmt.signed && bits < 32 && masked & (1 << (bits - 1)) != 0 {
        (i64::from(masked) - (1i64 << bits)) as f32
    } else if fmt.signed && bits == 32 {
        masked as i32 as f32
    } else {
        masked as f32
    }
}

fn native_frame(fmt: &PixelFormat, bytes: &[u8], path: &Path) -> Result<Frame, ClinicalError> {
    let n = fmt.rows * fmt.cols;
    if fmt.samples == 1 {
        return Ok(Frame::Grey((0..n).map(|i| sample(fmt, bytes, i)).collect()));
    }
    if fmt.bits_allocated != 8 {
        return Err(ClinicalError::unsupported(
            path,
            "colour pixels of more than 8 bits",
        ));
    }
    let at = |p: usize, c: usize| -> u8 {
        if fmt.planar {
            bytes[c * n + p]
        } else {
            bytes[3 * p + c]
        }
    };
    let mut rgb = Vec::with_capacity(3 * n);
    let ybr = match fmt.photometric.as_str() {
        "RGB" => false,
        "YBR_FULL" => true,
        other => {
            return Err(ClinicalError::unsupported(
                path,
                format!("native colour pixels in {other} (RGB and YBR_FULL are read)"),
            ))
        }
    };
    for p in 0..n {
        let (a, b, c) = (at(p, 0), at(p, 1), at(p, 2));
        if ybr {
            // ITU-R BT.601 full range, as in PS3.3 C.7.6.3.1.2.
            let (y, cb, cr) = (f32::from(a), f32::from(b) - 128.0, f32::from(c) - 128.0);
            let to = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            rgb.extend([
                to(y + 1.402 * cr),
                to(y - 0.344_136 * cb - 0.714_136 * cr),
                to(y + 1.772 * cb),
            ]);
        } else {
            rgb.extend([a, b, c]);
        }
    }
    RgbImage::from_raw(fmt.cols as u32, fmt.rows as u32, rgb)
        .map(Frame::Rgb)
        .ok_or_else(|| ClinicalError::format(path, "colour pixel buffer does not match its size"))
}
