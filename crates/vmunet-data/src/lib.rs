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
pub use dataset::{IsicDataset, Sample, Split, SynapseSlices, SynapseVolumes, Volume};
pub use decode::{check_image, decode_image, decode_image_limited, load_image, DecodeLimits};
pub use error::DataError;
pub use files::{check_unique_stems, image_files, is_image_file, output_stem, IMAGE_EXTENSIONS};
pub use npy::{read_npy, read_npz, write_npy, write_npz, Array};
pub use postprocess::{
    activate, encode_png, mask_from_probabilities, overlay, save_png_atomic, Mask,
};
pub use preprocess::{preprocess, ImageTensor, Preprocess};
pub use resize::resize_bilinear;
pub use synthetic::{write_synthetic_isic, write_synthetic_synapse};

/// Writes `bytes` to `path` atomically (temporary file, rename; [`vmunet_fs::write_atomic`]).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), DataError> {
    Ok(vmunet_fs::write_atomic(path, bytes)?)
}
