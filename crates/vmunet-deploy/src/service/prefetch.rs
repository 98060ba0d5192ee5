//! The next ready image, read, hashed, decoded and made into the model's input on a second
//! thread while the current one runs through the model and is written: decoding a photo
//! takes about as long as the model, and writing its overlay leaves a core free. Nothing here
//! has a side effect: the journal, the outputs and every decision stay with the handler, which
//! uses what was prepared only for the same file with the size it was found ready at.

use std::path::PathBuf;
use std::time::Instant;

use image::DynamicImage;
use vmunet_data::{decode_image, Array, DataError};
use vmunet_fs::sha256_hex;
use vmunet_runtime::SegmentPlan;

/// A file read and prepared ahead of its turn.
pub(super) struct Prefetched {
    /// The file.
    pub path: PathBuf,
    /// Its bytes and their SHA-256 (None: it could not be read; the handler reads it again).
    pub bytes: Option<(Vec<u8>, String)>,
    /// Seconds reading and hashing took.
    pub read_seconds: f64,
    /// The decoded image and model input (None when the bytes could not be read).
    pub decoded: Option<Decoded>,
}

/// A decoded image and its model input.
pub(super) struct Decoded {
    /// The image (EXIF orientation applied), or why it cannot be decoded.
    pub img: Result<DynamicImage, DataError>,
    /// Seconds decoding took.
    pub decode_seconds: f64,
    /// The model input and the seconds making it took (None when the image did not decode).
    pub input: Option<(Array, f64)>,
}

/// Reads, hashes and decodes `path` and prepares the model input by `plan`.
pub(super) fn prefetch(path: PathBuf, plan: SegmentPlan) -> Prefetched {
    let t0 = Instant::now();
    let Ok(bytes) = std::fs::read(&path) else {
        return Prefetched {
            path,
            bytes: None,
            read_seconds: 0.0,
            decoded: None,
        };
    };
    let sha = sha256_hex(&bytes);
    let read_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let img = decode_image(&path, &bytes);
    let decode_seconds = t1.elapsed().as_secs_f64();
    let input = img.as_ref().ok().map(|img| {
        let t2 = Instant::now();
        let x = plan.input(img);
        (x, t2.elapsed().as_secs_f64())
    });
    Prefetched {
        path,
        bytes: Some((bytes, sha)),
        read_seconds,
        decoded: Some(Decoded {
            img,
            decode_seconds,
            input,
        }),
    }
}
