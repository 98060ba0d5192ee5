//! The errors of the clinical formats: each names the file (or series, or peer) and what is
//! wrong with it.

use std::path::PathBuf;

/// Errors reading, segmenting or writing clinical data.
#[derive(Debug, thiserror::Error)]
pub enum ClinicalError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file is not what it must be (malformed DICOM or NIfTI, a missing attribute, ...).
    #[error("{path}: {reason}")]
    Format {
        /// File (or folder, for a series).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid file this toolkit does not handle (a transfer syntax it does not decode, a
    /// non-image SOP class, ...).
    #[error("{path}: {reason}")]
    Unsupported {
        /// File.
        path: PathBuf,
        /// What is not supported, and what is.
        reason: String,
    },
    /// The slices of a series do not make one volume (a gap, mixed orientations, ...).
    #[error("{path}: {reason}")]
    Series {
        /// Folder (or first file) of the series.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model cannot segment this source.
    #[error("{path}: {reason}")]
    Model {
        /// The source being segmented.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
    /// Reading or writing an image failed.
    #[error(transparent)]
    Data(#[from] vmunet_data::DataError),
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] vmunet_fs::FsError),
}

impl ClinicalError {
    /// A [`ClinicalError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`ClinicalError::Unsupported`] for `path`.
    pub fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`ClinicalError::Series`] for `path`.
    pub fn series(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Series {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`ClinicalError::Io`] maker for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
