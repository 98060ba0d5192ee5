//! Data errors; each names the file.

use std::path::PathBuf;

/// Errors reading or writing data files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file's contents are malformed.
    #[error("{path}: {reason}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image cannot be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    Image {
        /// File.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// The image file is truncated or corrupt (found by the structural check of its bytes
    /// before decoding; see [`crate::check_image`]).
    #[error("{path}: cannot decode image: corrupt or truncated {format}: {reason}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// Format recognised from the bytes (`JPEG`, `PNG`, ...).
        format: String,
        /// What is wrong.
        reason: String,
    },
    /// The image declares more pixels than the decoder may produce (see
    /// [`crate::DecodeLimits`]).
    #[error("{path}: the image is {width}x{height}, more than the limit of {limit} pixels")]
    TooManyPixels {
        /// File.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit (pixels).
        limit: u64,
    },
    /// A folder the dataset layout requires does not exist.
    #[error("{path}: folder is missing")]
    MissingFolder {
        /// Folder.
        path: PathBuf,
    },
    /// A folder holds neither of the dataset layouts a reader accepts.
    #[error("{path}: not a data folder: expected {expected}")]
    Layout {
        /// Folder.
        path: PathBuf,
        /// The layouts looked for.
        expected: String,
    },
    /// A dataset folder holds no files.
    #[error("{path}: folder is empty")]
    EmptyFolder {
        /// Folder.
        path: PathBuf,
    },
    /// Image and mask folders hold different numbers of files.
    #[error(
        "{images} has {n_images} files but {masks} has {n_masks}; first unpaired file: {file}"
    )]
    Unpaired {
        /// Image folder.
        images: PathBuf,
        /// Mask folder.
        masks: PathBuf,
        /// Files in the image folder.
        n_images: usize,
        /// Files in the mask folder.
        n_masks: usize,
        /// The first file without a partner.
        file: PathBuf,
    },
    /// A mask's size differs from its image's.
    #[error(
        "{mask} is {mask_w}x{mask_h} but its image {image} is {image_w}x{image_h} (width x height)"
    )]
    SizeMismatch {
        /// Image file.
        image: PathBuf,
        /// Mask file.
        mask: PathBuf,
        /// Image width.
        image_w: usize,
        /// Image height.
        image_h: usize,
        /// Mask width.
        mask_w: usize,
        /// Mask height.
        mask_h: usize,
    },
    /// A sample index past the end of a dataset.
    #[error("{root}: sample {index} is out of range (the dataset has {len})")]
    OutOfRange {
        /// Dataset root.
        root: PathBuf,
        /// Requested index.
        index: usize,
        /// Number of samples.
        len: usize,
    },
}

impl From<vmunet_fs::FsError> for DataError {
    fn from(e: vmunet_fs::FsError) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}
