//! A source to segment, whatever file it came from: a grey volume (CT, MR) with its place in
//! space, or a photo; and for DICOM sources, what a DICOM Segmentation must reference.

use std::path::PathBuf;

use dicom_object::InMemDicomObject;
use image::DynamicImage;

use crate::Geometry;

/// A grey volume: one value per voxel (Hounsfield units for CT) on its grid.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Values, slice-major ([`Geometry::index`]).
    pub voxels: Vec<f32>,
    /// The grid.
    pub geometry: Geometry,
}

/// What a source holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// A grey volume (one or more slices).
    Volume(Scan),
    /// A colour picture (a dermoscopy photo); its grid has one slice.
    Photo {
        /// The picture.
        image: DynamicImage,
        /// Its grid (`[width, height, 1]`; pixel spacing where the file gives one).
        geometry: Geometry,
    },
}

impl Content {
    /// The grid of the source.
    pub fn geometry(&self) -> &Geometry {
        match self {
            Self::Volume(s) => &s.geometry,
            Self::Photo { geometry, .. } => geometry,
        }
    }
}

/// Where a format came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// A folder of DICOM files (one series picked).
    DicomSeries,
    /// One DICOM file (single- or multi-frame).
    DicomFile,
    /// A NIfTI-1 file (`.nii`, `.nii.gz`).
    Nifti,
}

/// One source image of a DICOM source: the instance (and frame) a slice came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRef {
    /// SOP Class UID.
    pub sop_class: String,
    /// SOP Instance UID.
    pub sop_instance: String,
    /// Frame number (1-based) within a multi-frame instance.
    pub frame: Option<usize>,
}

/// A series found in a DICOM folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesSummary {
    /// Series Instance UID.
    pub series_uid: String,
    /// Series Description, when given.
    pub description: Option<String>,
    /// Modality.
    pub modality: Option<String>,
    /// Images (instances; frames of a multi-frame instance count one each).
    pub images: usize,
}

/// What a DICOM Segmentation of a DICOM source refers to and copies.
#[derive(Debug, Clone)]
pub struct DicomRefs {
    /// The Patient and General Study attributes of the source, copied into results.
    pub study: InMemDicomObject,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Frame of Reference UID (absent for photos without one).
    pub frame_of_reference_uid: Option<String>,
    /// Modality of the source series.
    pub modality: String,
    /// The instance of each slice `k` (source slice order).
    pub slices: Vec<InstanceRef>,
    /// The series segmented, and the others the folder held.
    pub chosen: SeriesSummary,
    /// The series not segmented.
    pub others: Vec<SeriesSummary>,
    /// Files of the folder that were not DICOM (or not images), skipped.
    pub skipped: Vec<PathBuf>,
}

/// A source read and ready to segment.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file or folder.
    pub path: PathBuf,
    /// The name results are written under (folder name, or file stem without `.dcm`,
    /// `.nii`, `.nii.gz`).
    pub name: String,
    /// Its format.
    pub format: SourceFormat,
    /// Its pixels.
    pub content: Content,
    /// For DICOM sources: the references a DICOM Segmentation needs.
    pub dicom: Option<DicomRefs>,
}

/// The name results of `path` are written under: a folder's name, a file's name without
/// `.dcm`, `.dicom`, `.nii` or `.nii.gz`.
pub fn source_name(path: &std::path::Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "source".into());
    if path.is_dir() {
        return file;
    }
    let lower = file.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".dcm", ".dicom"] {
        if lower.ends_with(ext) && lower.len() > ext.len() {
            return file[..file.len() - ext.len()].to_string();
        }
    }
    file
}
