//! Image decoding for every front end (infer, evaluation, training data, masks, the service).
//!
//! [`decode_image`] is the one place a picture is read: the format is recognised from the
//! bytes, their structure is checked ([`check_image`]: a JPEG must end with its end-of-image
//! marker and carry enough entropy-coded data for its size, every PNG chunk must pass its
//! CRC and the file must reach `IEND`, a WebP must hold all the bytes its RIFF header
//! announces), the format's decoder runs with any panic inside it turned into an error, and
//! the EXIF orientation (JPEG, PNG `eXIf`, TIFF, WebP) is applied, so the image is returned
//! as every viewer displays it. Masks and overlays written at the decoded size therefore come
//! out in the displayed orientation too.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::DataError;

#[cfg(feature = "turbojpeg")]
mod turbo;

/// Reads and decodes the image at `path`: structural check, decode, EXIF orientation
/// applied. Errors name the file and say what is wrong; a malformed file never panics.
pub fn load_image(path: &Path) -> Result<DynamicImage, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(path, &bytes)
}

/// Decodes an image held in memory; `path` names it in errors and, when the bytes do not
/// reveal the format, its extension decides. Same checks as [`load_image`].
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<DynamicImage, DataError> {
    decode_image_limited(path, bytes, &DecodeLimits::default())
}

/// What a decoder may be asked to produce: a server refuses an image bomb (a small file that
/// declares a huge picture) from its header, before any pixel is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeLimits {
    /// The most pixels (width x height) an image may declare; `None`: no limit.
    pub max_pixels: Option<u64>,
}

/// [`decode_image`] with `limits`: an image that declares more pixels than allowed is a
/// [`DataError::TooManyPixels`], found from its header.
pub fn decode_image_limited(
    path: &Path,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<DynamicImage, DataError> {
    let format = check_image(path, bytes)?;
    let decode_err = |e: image::ImageError| DataError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let decode = || -> Result<DynamicImage, DataError> {
        let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
            .into_decoder()
            .map_err(decode_err)?;
        if let Some(max) = limits.max_pixels {
            let (width, height) = decoder.dimensions();
            if u64::from(width) * u64::from(height) > max {
                return Err(DataError::TooManyPixels {
                    path: path.to_path_buf(),
                    width,
                    height,
                    limit: max,
                });
            }
            let mut l = image::Limits::default();
            // Every format decodes to at most 16 bytes a pixel (RGBA f32), plus slack.
            l.max_alloc = Some(max.saturating_mul(16).saturating_add(64 << 20));
            decoder.set_limits(l).map_err(decode_err)?;
        }
        let orientation = decoder.orientation().map_err(decode_err)?;
        #[cfg(feature = "turbojpeg")]
        if format == ImageFormat::Jpeg {
            // The pixels Pillow gives (libjpeg-turbo: accurate integer DCT, fancy upsampling);
            // the `image` decoder above has only read the header (size, EXIF orientation).
            if let Some(mut img) = turbo::decode(path, bytes)? {
                img.apply_orientation(orientation);
                return Ok(img);
            }
        }
        let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
        img.apply_orientation(orientation);
        Ok(img)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(DataError::Image {
            path: path.to_path_buf(),
            reason: format!("the {} decoder failed (panic: {what})", format_name(format)),
        })
    })
}

/// The name people use for an image format (`JPEG`, `PNG`, `WebP`, ...).
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WEBP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Pnm => "PNM",
        _ => "image",
    }
}

/// Recognises the format of `bytes` (falling back on `path`'s extension) and checks their
/// structure without decoding pixels: a truncated or corrupt JPEG, PNG or WebP is a
/// [`DataError::Corrupt`] naming `path` and what is wrong. Other formats are left to their
/// decoders, which refuse short files themselves.
pub fn check_image(path: &Path, bytes: &[u8]) -> Result<ImageFormat, DataError> {
    let format = image::guess_format(bytes)
        .ok()
        .or_else(|| ImageFormat::from_path(path).ok())
        .ok_or_else(|| DataError::Image {
            path: path.to_path_buf(),
            reason: "unknown image format".into(),
        })?;
    let checked = match format {
        ImageFormat::Jpeg => check_jpeg(bytes),
        ImageFormat::Png => check_png(bytes),
        ImageFormat::WebP => check_riff(bytes),
        _ => Ok(()),
    };
    checked.map_err(|reason| DataError::Corrupt {
        path: path.to_path_buf(),
        format: format_name(format).into(),
        reason,
    })?;
    Ok(format)
}

fn u16_be(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

fn u32_be(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A JPEG frame header: size, and per component its id and 8x8 block count.
struct Frame {
    width: usize,
    height: usize,
    /// (component id, blocks of the component in a non-interleaved scan).
    components: Vec<(u8, usize)>,
    /// Huffman sequential (SOF0/SOF1) or progressive (SOF2): the only processes whose
    /// scan data has a known lower bound here.
    huffman: Option<Process>,
}

#[derive(Clone, Copy, PartialEq)]
enum Process {
    Sequential,
    Progressive,
}

impl Frame {
    fn parse(marker: u8, seg: &[u8]) -> Result<Self, String> {
        let bad = || format!("malformed frame header (SOF{})", marker - 0xC0);
        let height = u16_be(seg, 1).ok_or_else(bad)?;
        let width = u16_be(seg, 3).ok_or_else(bad)?;
        let n = usize::from(*seg.get(5).ok_or_else(bad)?);
        let mut sampling = Vec::with_capacity(n);
        for c in 0..n {
            let id = *seg.get(6 + 3 * c).ok_or_else(bad)?;
            let hv = *seg.get(6 + 3 * c + 1).ok_or_else(bad)?;
            let (h, v) = (usize::from(hv >> 4), usize::from(hv & 15));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(bad());
            }
            sampling.push((id, h, v));
        }
        if n == 0 || width == 0 {
            return Err(bad());
        }
        let hmax = sampling.iter().map(|s| s.1).max().unwrap_or(1);
        let vmax = sampling.iter().map(|s| s.2).max().unwrap_or(1);
        let components = sampling
            .iter()
            .map(|&(id, h, v)| {
                let w = (width * h).div_ceil(hmax);
                let hh = (height * v).div_ceil(vmax);
                (id, w.div_ceil(8) * hh.div_ceil(8))
            })
            .collect();
        let huffman = match marker {
            // A height of 0 is set later by a DNL marker: the block count is unknown.
            _ if height == 0 => None,
            0xC0 | 0xC1 => Some(Process::Sequential),
            0xC2 => Some(Process::Progressive),
            _ => None,
        };
        Ok(Self {
            width,
            height,
            components,
            huffman,
        })
    }

    /// The fewest bytes of entropy-coded data the scan with header `sos` can hold: every
    /// 8x8 block of a scanned component carries at least one DC code and, in a sequential
    /// scan, one AC code (EOB or a coefficient), each no shorter than the shortest code of
    /// its Huffman table; a progressive DC refinement scan carries one bit per block. Block
    /// counts are the non-interleaved ones, the smallest the standard allows.
    fn min_scan_bytes(&self, sos: &[u8], shortest: &[[usize; 4]; 2]) -> usize {
        let Some(process) = self.huffman else {
            return 0;
        };
        let ns = usize::from(sos.first().copied().unwrap_or(0));
        let (Some(&ss), Some(&se), Some(&ahal)) = (
            sos.get(1 + 2 * ns),
            sos.get(2 + 2 * ns),
            sos.get(3 + 2 * ns),
        ) else {
            return 0;
        };
        let mut bits = 0usize;
        for j in 0..ns {
            let (Some(&id), Some(&tables)) = (sos.get(1 + 2 * j), sos.get(2 + 2 * j)) else {
                return 0;
            };
            let blocks = self
                .components
                .iter()
                .find(|c| c.0 == id)
                .map_or(0, |c| c.1);
            let dc = shortest[0][usize::from(tables >> 4) & 3];
            let ac = shortest[1][usize::from(tables & 15) & 3];
            let per_block = match process {
                Process::Sequential => dc + if se > 0 { ac } else { 0 },
                Process::Progressive if ss == 0 && ahal >> 4 == 0 => dc,
                Process::Progressive if ss == 0 => 1,
                Process::Progressive => 0,
            };
            bits += blocks * per_block;
        }
        bits / 8
    }
}

fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Records, for each Huffman table a DHT segment defines, its shortest code length.
fn read_dht(seg: &[u8], shortest: &mut [[usize; 4]; 2]) -> Result<(), String> {
    let mut at = 0usize;
    while let Some(&class_id) = seg.get(at) {
        let counts = seg
            .get(at + 1..at + 17)
            .ok_or("malformed Huffman table (DHT)")?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let (class, id) = (usize::from(class_id >> 4), usize::from(class_id & 15));
        if class > 1 || id > 3 || total == 0 || at + 17 + total > seg.len() {
            return Err("malformed Huffman table (DHT)".into());
        }
        shortest[class][id] = counts.iter().position(|&c| c > 0).map_or(1, |i| i + 1);
        at += 17 + total;
    }
    Ok(())
}

/// Walks the JPEG marker structure: SOI, segments, the entropy-coded data after each SOS,
/// up to EOI. Bytes after EOI are ignored (cameras append data there).
fn check_jpeg(bytes: &[u8]) -> Result<(), String> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("truncated or not a JPEG: no start-of-image marker (FFD8)".into());
    }
    let no_eoi = |what: &str| {
        format!(
            "the file ends {what}, before the end-of-image marker (FFD9), after {} bytes",
            bytes.len()
        )
    };
    let mut frame: Option<Frame> = None;
    // Shortest code of each (DC, AC) x (0..4) Huffman table; 1 bit until defined.
    let mut shortest = [[1usize; 4]; 2];
    let mut scans = 0usize;
    let mut pos = 2usize;
    loop {
        // Skip stray bytes and fill bytes up to the next marker (as libjpeg does).
        while bytes.get(pos).is_some_and(|&b| b != 0xFF) {
            pos += 1;
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return Err(no_eoi("between segments"));
        };
        pos += 1;
        match marker {
            0xD9 => break,
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let len = u16_be(bytes, pos).ok_or_else(|| no_eoi("in a segment header"))?;
        if len < 2 {
            return Err(format!(
                "segment FF{marker:02X} at byte {} has length {len}",
                pos - 2
            ));
        }
        let end = pos + len;
        let seg = bytes
            .get(pos + 2..end)
            .ok_or_else(|| no_eoi(&format!("inside segment FF{marker:02X}")))?;
        if is_sof(marker) {
            frame = Some(Frame::parse(marker, seg)?);
        } else if marker == 0xC4 {
            read_dht(seg, &mut shortest)?;
        }
        pos = end;
        if marker == 0xDA {
            let Some(frame) = &frame else {
                return Err("scan (SOS) before any frame header (SOF)".into());
            };
            scans += 1;
            let min = frame.min_scan_bytes(seg, &shortest);
            // Entropy-coded data: up to a marker that is not a stuffed 00 or a restart.
            let mut data = 0usize;
            loop {
                let Some(&b) = bytes.get(pos) else {
                    return Err(no_eoi("in the scan data"));
                };
                if b == 0xFF {
                    match bytes.get(pos + 1) {
                        None => return Err(no_eoi("in the scan data")),
                        Some(0x00) => {
                            data += 1;
                            pos += 2;
                        }
                        Some(0xD0..=0xD7) => pos += 2,
                        Some(_) => break,
                    }
                } else {
                    data += 1;
                    pos += 1;
                }
            }
            if data < min {
                return Err(format!(
                    "scan {scans} holds only {data} bytes of scan data; a {}x{} image needs at \
                     least {min}: the pixel data was cut",
                    frame.width, frame.height
                ));
            }
        }
    }
    if frame.is_none() {
        return Err("no frame header (SOF)".into());
    }
    if scans == 0 {
        return Err("no scan (SOS): the image holds no pixel data".into());
    }
    Ok(())
}

/// CRC-32 (ISO 3309, as PNG uses it).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !data
        .iter()
        .fold(!0u32, |c, &b| TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

/// Walks the PNG chunks: IHDR first, every CRC right, at least one IDAT, up to IEND. Bytes
/// after IEND are ignored.
fn check_png(bytes: &[u8]) -> Result<(), String> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if bytes.get(..8) != Some(&SIGNATURE) {
        return Err("no PNG signature".into());
    }
    let mut pos = 8usize;
    let mut idat = 0usize;
    loop {
        let (Some(len), Some(kind)) = (u32_be(bytes, pos), bytes.get(pos + 4..pos + 8)) else {
            return Err(format!(
                "the file ends at byte {}, before the IEND chunk",
                bytes.len()
            ));
        };
        let name = String::from_utf8_lossy(kind).into_owned();
        if pos == 8 && kind != b"IHDR" {
            return Err(format!("first chunk is {name:?}, not IHDR"));
        }
        if len > 0x7FFF_FFFF {
            return Err(format!("chunk {name} at byte {pos} has length {len}"));
        }
        let end = pos + 8 + len as usize;
        let (Some(body), Some(crc)) = (bytes.get(pos + 4..end), u32_be(bytes, end)) else {
            return Err(format!(
                "the file ends inside chunk {name} (at byte {pos}, {len} bytes long), \
                 before the IEND chunk"
            ));
        };
        if crc32(body) != crc {
            return Err(format!(
                "chunk {name} at byte {pos} fails its CRC (the data is damaged)"
            ));
        }
        match kind {
            b"IDAT" => idat += 1,
            b"IEND" => break,
            _ => {}
        }
        pos = end + 4;
    }
    if idat == 0 {
        return Err("no IDAT chunk: the image holds no pixel data".into());
    }
    Ok(())
}

/// A RIFF (WebP) file must hold the bytes its header announces.
fn check_riff(bytes: &[u8]) -> Result<(), String> {
    let size = bytes
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("truncated RIFF header")?;
    let want = size.saturating_add(8);
    if bytes.len() < want {
        return Err(format!(
            "the RIFF header announces {want} bytes but the file has {}",
            bytes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_png_reference() {
        // The CRC of the IEND chunk type, as written in every PNG.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
