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
}
