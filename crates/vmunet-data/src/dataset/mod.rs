//! Training and evaluation datasets in the official folder layouts: ISIC 2017/2018
//! ([`IsicDataset`]) and Synapse as preprocessed by TransUNet ([`SynapseSlices`],
//! [`SynapseVolumes`]).

use std::path::{Path, PathBuf};

use crate::DataError;

pub mod isic;
pub mod synapse;

pub use isic::{IsicDataset, Split};
pub use synapse::{SynapseSlices, SynapseVolumes, Volume};

/// One training sample: a planar float image and its per-pixel target.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sample name (file stem or slice name).
    pub name: String,
    /// Image values, planar CHW.
    pub image: Vec<f32>,
    /// Image channels.
    pub channels: usize,
    /// Height of image and mask.
    pub height: usize,
    /// Width of image and mask.
    pub width: usize,
    /// Target, HW: 0/1 for binary ISIC, the class index as f32 for Synapse.
    pub mask: Vec<f32>,
}

pub(crate) fn out_of_range(root: &Path, index: usize, len: usize) -> DataError {
    DataError::OutOfRange {
        root: root.to_path_buf(),
        index,
        len,
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn format_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks that `path` is a folder.
pub(crate) fn require_dir(path: PathBuf) -> Result<PathBuf, DataError> {
    if path.is_dir() {
        Ok(path)
    } else {
        Err(DataError::MissingFolder { path })
    }
}
