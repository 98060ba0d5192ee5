//! The clinic's formats. In: a DICOM series (a folder, or the instances a DICOM node
//! received), a single- or multi-frame DICOM image (CT, MR, dermoscopy photos), a NIfTI-1
//! volume. Out: a DICOM Segmentation referencing the source series, a NIfTI label volume with
//! the source's affine, and a JSON record with per-structure volumes. Between them: slice-wise
//! segmentation with any runtime, with the preprocessing the model records, each slice in one
//! orientation whatever the source ([`Reorient`]).

#![deny(missing_docs)]
// Affines and grids are 3x3 and 4x4 matrices: indexed loops read as the formulas do.
#![allow(clippy::needless_range_loop)]

pub mod codes;
pub mod dicom;
mod error;
pub mod eval;
pub mod geometry;
pub mod job;
pub mod nifti;
pub mod node;
pub mod preview;
pub mod source;
pub mod volume;

pub use codes::{CodeTable, SegmentCodes};
pub use dicom::seg::{Algorithm, SegSummary, SegType, Segment};
pub use error::ClinicalError;
pub use geometry::{Geometry, Reorient};
pub use job::{ClinicalOutputs, ClinicalRecord, ClinicalSegmenter, JobOptions};
pub use source::{Content, DicomRefs, Scan, Source, SourceFormat};
pub use volume::{VolumeOptions, VolumeSegmenter};

/// Reads a source: a DICOM folder or file, or a NIfTI file (`.nii`, `.nii.gz`).
pub fn read_source(path: &std::path::Path) -> Result<Source, ClinicalError> {
    read_source_series(path, None)
}

/// [`read_source`], segmenting the series `series` (a Series Instance UID) of a DICOM folder
/// instead of the one the rule picks (the most images).
pub fn read_source_series(
    path: &std::path::Path,
    series: Option<&str>,
) -> Result<Source, ClinicalError> {
    if !path.exists() {
        return Err(ClinicalError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    }
    if nifti::is_nifti(path) {
        nifti::read_nifti(path)
    } else {
        dicom::read::read_dicom_series(path, series)
    }
}

/// Whether `path` is a clinical source rather than a photo: a NIfTI file, a DICOM file, or a
/// folder holding DICOM files (the first 256 files under it are looked at).
pub fn is_clinical(path: &std::path::Path) -> bool {
    if nifti::is_nifti(path) {
        return true;
    }
    if path.is_file() {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        return ext == "dcm" || ext == "dicom" || dicom::read::looks_like_dicom(path);
    }
    let mut stack = vec![path.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                if dicom::read::looks_like_dicom(&p) {
                    return true;
                }
                seen += 1;
                if seen >= 256 {
                    return false;
                }
            }
        }
    }
    false
}
