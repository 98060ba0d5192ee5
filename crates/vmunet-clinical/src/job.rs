//! One source to files: `OUT/NAME.nii.gz` (labels on the source grid, its affine),
//! `OUT/NAME.seg.dcm` (DICOM sources) and `OUT/NAME.json` (the record, written last: its
//! presence means the rest is complete). What `vmunet infer` and the DICOM node both run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::codes::CodeTable;
use crate::dicom::seg::{encode_seg, Algorithm, SegSummary, SegType, Segment};
use crate::source::SeriesSummary;
use crate::volume::{VolumeSegmenter, VolumeTiming};
use crate::{ClinicalError, Source, SourceFormat};

/// The output files of a source named `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClinicalOutputs {
    /// `NAME.nii.gz`.
    pub nifti: PathBuf,
    /// `NAME.seg.dcm` (DICOM sources).
    pub seg: Option<PathBuf>,
    /// `NAME.json`.
    pub record: PathBuf,
    /// `NAME_preview.png`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PathBuf>,
}

impl ClinicalOutputs {
    /// The files for `name` in `dir`.
    pub fn new(dir: &Path, name: &str, dicom: bool) -> Self {
        Self {
            nifti: dir.join(format!("{name}.nii.gz")),
            seg: dicom.then(|| dir.join(format!("{name}.seg.dcm"))),
            record: dir.join(format!("{name}.json")),
            preview: None,
        }
    }
}

/// One structure's size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StructureVolume {
    /// Class index (= DICOM segment number).
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Whether the code table knew the class (else coded as generic tissue).
    pub coded: bool,
    /// Voxels.
    pub voxels: u64,
    /// Millilitres (voxels x voxel volume); none for photos (an area, not a volume: see
    /// `voxels`, the pixels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml: Option<f64>,
}

/// Seconds per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClinicalTiming {
    /// Reading and decoding the source.
    pub read: f64,
    /// Segmentation stages.
    #[serde(flatten)]
    pub segment: VolumeTiming,
    /// Encoding and writing the NIfTI and SEG files.
    pub write: f64,
}

/// What segmenting one source did: `NAME.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClinicalRecord {
    /// The source file or folder.
    pub source: PathBuf,
    /// Its format.
    pub format: SourceFormat,
    /// The name outputs are written under.
    pub name: String,
    /// The series segmented (DICOM folders: picked among `other_series` by the most images,
    /// then the lowest series number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesSummary>,
    /// The other series of the folder, not segmented.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_series: Vec<SeriesSummary>,
    /// Files of the folder skipped (not DICOM, or not images).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<PathBuf>,
    /// Source grid: voxels along columns, rows, slices.
    pub dims: [usize; 3],
    /// Voxel spacing (mm).
    pub spacing_mm: [f64; 3],
    /// The RAS affine of the source (and of the NIfTI labels).
    pub affine_ras: [[f64; 4]; 4],
    /// The model file.
    pub model: String,
    /// Its SHA-256.
    pub model_sha256: String,
    /// The runtime that ran it.
    pub runtime: String,
    /// Preprocessing applied (from the model's metadata).
    pub preprocessing: String,
    /// Model input size.
    pub input_size: usize,
    /// Per-structure volumes (classes 1.., background left out).
    pub structures: Vec<StructureVolume>,
    /// The DICOM Segmentation written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seg: Option<SegSummary>,
    /// Files written.
    pub outputs: ClinicalOutputs,
    /// Seconds per stage.
    pub timing: ClinicalTiming,
    /// vmunet version.
    pub vmunet_version: String,
}

/// What the job writes besides labels.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// BINARY (default) or LABELMAP.
    pub seg_type: SegType,
    /// Class name -> codes.
    pub codes: CodeTable,
    /// Also write `NAME_preview.png` ([`crate::preview::preview`]): for DICOM sources, the
    /// SEG as read back from its file over the source.
    pub preview: bool,
}

/// A [`VolumeSegmenter`] with what every result records: the model's name and hash.
#[derive(Debug)]
pub struct ClinicalSegmenter {
    /// The segmenter.
    pub volumes: VolumeSegmenter,
    algorithm: Algorithm,
    options: JobOptions,
}

impl ClinicalSegmenter {
    /// Wraps `volumes`; the model file is hashed once here.
    pub fn new(volumes: VolumeSegmenter, options: JobOptions) -> Result<Self, ClinicalError> {
        let (model, model_sha256) = match volumes.session().file() {
            Some(f) => (
                f.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                vmunet_fs::sha256_file(&f.path)?,
            ),
            None => (volumes.session().label().to_string(), "0".repeat(64)),
        };
        Ok(Self {
            volumes,
            algorithm: Algorithm {
                model,
                model_sha256,
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            options,
        })
    }

    /// The segments of this model's classes (1..; a one-class model's class is 1).
    pub fn segments(&self) -> Vec<(Segment, bool)> {
        let names = self.volumes.classes();
        let named: Vec<(usize, String)> = if names.len() <= 1 {
            vec![(
                1,
                names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "foreground".into()),
            )]
        } else {
            names.iter().cloned().enumerate().skip(1).collect()
        };
        named
            .into_iter()
            .map(|(k, n)| {
                let (codes, known) = self.options.codes.lookup(&n);
                (
                    Segment {
                        number: k as u16,
                        name: n,
                        codes,
                    },
                    known,
                )
            })
            .collect()
    }

    /// Reads nothing: segments the already read `source` (read in `read_seconds`) and writes
    /// its outputs into `out` under `name`.
    pub fn run(
        &mut self,
        source: &Source,
        read_seconds: f64,
        out: &Path,
        name: &str,
    ) -> Result<ClinicalRecord, ClinicalError> {
        std::fs::create_dir_all(out).map_err(ClinicalError::io(out))?;
        let (labels, seg_timing) = self.volumes.segment(source)?;
        let t = Instant::now();
        let g = *source.content.geometry();
        let mut outputs = ClinicalOutputs::new(out, name, source.dicom.is_some());
        if self.options.preview {
            outputs.preview = Some(out.join(format!("{name}_preview.png")));
        }
        crate::nifti::write_labels(
            &outputs.nifti,
            &g,
            &labels,
            &format!("vmunet {}", self.algorithm.model),
        )?;
        let segments = self.segments();
        let seg = match (&source.dicom, &outputs.seg) {
            (Some(refs), Some(path)) => {
                let list: Vec<Segment> = segments.iter().map(|(s, _)| s.clone()).collect();
                let (bytes, summary) = encode_seg(
                    refs,
                    &g,
                    &labels,
                    &list,
                    self.options.seg_type,
                    &self.algorithm,
                )?;
                vmunet_fs::write_durable_output(path, &bytes)?;
                Some(summary)
            }
            _ => None,
        };
        if let Some(path) = &outputs.preview {
            // What a viewer shows: the SEG read back from its file (the labels, for NIfTI).
            let shown = match &outputs.seg {
                Some(seg) => crate::dicom::seg::read_seg_labels(seg, &g)?,
                None => labels.clone(),
            };
            let classes = self.volumes.classes().len().max(1);
            let (img, _) = crate::preview::preview(&source.content, &shown, classes);
            let png = vmunet_data::encode_png(&image::DynamicImage::ImageRgb8(img), path)?;
            vmunet_fs::write_durable_output(path, &png)?;
        }
        let mut counts = vec![0u64; 256];
        for &l in &labels {
            counts[usize::from(l)] += 1;
        }
        let voxel_ml = g.voxel_ml();
        let is_volume = matches!(source.content, crate::Content::Volume(_));
        let structures = segments
            .iter()
            .map(|(s, known)| {
                let k = usize::from(s.number);
                StructureVolume {
                    class: k,
                    name: s.name.clone(),
                    coded: *known,
                    voxels: counts[k.min(255)],
                    ml: is_volume.then(|| counts[k.min(255)] as f64 * voxel_ml),
                }
            })
            .collect();
        let write = t.elapsed().as_secs_f64();
        let session = self.volumes.session();
        let dicom = source.dicom.as_ref();
        let record = ClinicalRecord {
            source: source.path.clone(),
            format: source.format,
            name: name.to_string(),
            series: dicom.map(|d| d.chosen.clone()),
            other_series: dicom.map(|d| d.others.clone()).unwrap_or_default(),
            skipped_files: dicom.map(|d| d.skipped.clone()).unwrap_or_default(),
            dims: g.dims,
            spacing_mm: g.spacing,
            affine_ras: g.affine_ras(),
            model: self.algorithm.model.clone(),
            model_sha256: self.algorithm.model_sha256.clone(),
            runtime: vmunet_runtime::Runtime::description(session),
            preprocessing: self.volumes.preprocessing().to_string(),
            input_size: self.volumes.input_size().0,
            structures,
            seg,
            outputs: outputs.clone(),
            timing: ClinicalTiming {
                read: read_seconds,
                segment: seg_timing,
                write,
            },
            vmunet_version: self.algorithm.version.clone(),
        };
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| ClinicalError::format(&outputs.record, e.to_string()))?;
        vmunet_fs::write_durable_output(&outputs.record, text.as_bytes())?;
        Ok(record)
    }

    /// Reads `path` (DICOM folder or file, NIfTI) and [`ClinicalSegmenter::run`]s it, named
    /// after the source.
    pub fn segment_path(
        &mut self,
        path: &Path,
        out: &Path,
    ) -> Result<ClinicalRecord, ClinicalError> {
        let t = Instant::now();
        let source = crate::read_source(path)?;
        let read = t.elapsed().as_secs_f64();
        let name = source.name.clone();
        self.run(&source, read, out, &name)
    }
}
