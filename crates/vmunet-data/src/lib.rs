//! Data in and out of VM-UNet: `.npy`/`.npz` tensors, image decoding and the official
//! preprocessing, postprocessing to masks and overlays, the ISIC and Synapse training
//! datasets with seeded augmentation, and synthetic data sets. Written once and used by every
//! runtime, so a deployed model sees exactly what the trained one saw.

#![deny(missing_docs)]

pub mod augment;
pub mod dataset;
mod decode;
mod error;
pub mod files;
pub mod npy;
pub mod postprocess;
pub mod preprocess;
mod resize;
pub mod synthetic;

pub use augment::{
    augment_isic, augment_synapse, resize_isic_sample, sample_seed, zoom, zoom_sample, ZoomOrder,
};
#[cfg(feature = "hdf5")]
pub use dataset::SynapseVolumes;
pub use dataset::{IsicDataset, Sample, Split, SynapseSlices, Volume};
pub use decode::{check_image, decode_image, load_image};
pub use error::DataError;
pub use files::{check_unique_stems, image_files, is_image_file, output_stem, IMAGE_EXTENSIONS};
pub use npy::{read_npy, read_npz, write_npy, write_npz, Array};
pub use postprocess::{activate, mask_from_probabilities, overlay, save_png_atomic, Mask};
pub use preprocess::{preprocess, ImageTensor, Preprocess};
pub use resize::resize_bilinear;
pub use synthetic::{write_synthetic_isic, write_synthetic_synapse};

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), DataError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
