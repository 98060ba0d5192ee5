//! The Synapse metrics in 3-D (DSC and HD95 per organ, medpy conventions, with the voxel
//! spacing) between label volumes given as NIfTI files or DICOM Segmentations: per case,
//! then averaged over cases and organs as the paper reports.

use std::path::{Path, PathBuf};

pub use vmunet_metrics::{SynapseMetrics, SynapseSummary};

use crate::{ClinicalError, Geometry};

/// A label volume on its grid.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The grid.
    pub geometry: Geometry,
    /// One label per voxel ([`Geometry::index`] order).
    pub labels: Vec<u8>,
}

fn is_seg(path: &Path) -> bool {
    path.to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".dcm")
}

/// Reads a label volume: a NIfTI file, or a DICOM SEG placed on `grid` (a SEG alone does not
/// give the whole grid: its empty frames are omitted).
pub fn read_labels(path: &Path, grid: Option<&Geometry>) -> Result<Labels, ClinicalError> {
    if is_seg(path) {
        let grid = grid.ok_or_else(|| {
            ClinicalError::format(path, "a DICOM SEG is read on the grid of a NIfTI label volume: give a NIfTI file on the other side")
        })?;
        let labels = crate::dicom::seg::read_seg_labels(path, grid)?;
        Ok(Labels {
            geometry: *grid,
            labels,
        })
    } else {
        let (geometry, labels) = crate::nifti::read_labels(path)?;
        Ok(Labels { geometry, labels })
    }
}

/// Whether two grids are the same within `tol` mm (origin) and 1e-4 (directions, spacing).
pub fn same_grid(a: &Geometry, b: &Geometry) -> bool {
    a.dims == b.dims
        && (0..3).all(|i| (a.origin[i] - b.origin[i]).abs() < 1e-2)
        && (0..3).all(|i| (a.spacing[i] - b.spacing[i]).abs() < 1e-3)
        && (0..3).all(|i| (0..3).all(|c| (a.axes[i][c] - b.axes[i][c]).abs() < 1e-3))
}

/// One case: a name, the prediction and the ground truth (files).
#[derive(Debug, Clone)]
pub struct CasePair {
    /// Case name.
    pub name: String,
    /// Predicted labels (NIfTI or SEG).
    pub pred: PathBuf,
    /// Ground truth (NIfTI or SEG).
    pub truth: PathBuf,
}

/// Scores one case given as labels against a truth file (read on the prediction's grid).
/// Both are compared in the canonical orientation ([`crate::Reorient`]), so the same voxels
/// stored in another axis order (a NIfTI from another converter) score as equal.
pub fn add_case(
    metrics: &mut SynapseMetrics,
    name: &str,
    pred: &Labels,
    truth_path: &Path,
) -> Result<(), ClinicalError> {
    let truth = read_labels(truth_path, Some(&pred.geometry))?;
    let canon = |l: &Labels| {
        let r = l.geometry.canonical();
        Labels {
            geometry: r.geometry(&l.geometry),
            labels: r.to_canonical(&l.labels),
        }
    };
    let (pred, truth) = (canon(pred), canon(&truth));
    if !same_grid(&pred.geometry, &truth.geometry) {
        return Err(ClinicalError::format(
            truth_path,
            format!(
                "the ground truth's grid ({:?} voxels at {:?}) is not the prediction's ({:?} at {:?})",
                truth.geometry.dims, truth.geometry.origin, pred.geometry.dims, pred.geometry.origin
            ),
        ));
    }
    // The ground truth's grid gives the spacing (a SEG read on it and the NIfTI it was
    // written beside then score identically).
    let [c, r, d] = truth.geometry.dims;
    let sp = truth.geometry.spacing;
    metrics
        .add_case_with_spacing(
            name,
            &pred.labels,
            &truth.labels,
            &[d, r, c],
            Some(&[sp[2], sp[1], sp[0]]),
        )
        .map_err(|e| ClinicalError::format(truth_path, e.to_string()))
}

/// Scores every pair; `num_classes` includes the background.
pub fn evaluate_pairs(
    pairs: &[CasePair],
    num_classes: usize,
) -> Result<SynapseSummary, ClinicalError> {
    let mut metrics = SynapseMetrics::new(num_classes)
        .map_err(|e| ClinicalError::format("--classes", e.to_string()))?;
    for p in pairs {
        // The grid comes from whichever side is a NIfTI file.
        let pred = if is_seg(&p.pred) {
            let truth = read_labels(&p.truth, None)?;
            read_labels(&p.pred, Some(&truth.geometry))?
        } else {
            read_labels(&p.pred, None)?
        };
        add_case(&mut metrics, &p.name, &pred, &p.truth)?;
    }
    Ok(metrics.summary())
}

/// The cases of `pred` and `truth`: two files, or two folders whose `NAME.nii.gz`,
/// `NAME.nii` or `NAME.seg.dcm` files pair up by name (a name on one side only is an error).
pub fn pair_cases(pred: &Path, truth: &Path) -> Result<Vec<CasePair>, ClinicalError> {
    if pred.is_file() && truth.is_file() {
        return Ok(vec![CasePair {
            name: label_stem(pred).unwrap_or_else(|| "case".into()),
            pred: pred.to_path_buf(),
            truth: truth.to_path_buf(),
        }]);
    }
    let list = |dir: &Path| -> Result<std::collections::BTreeMap<String, PathBuf>, ClinicalError> {
        let mut m = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(ClinicalError::io(dir))? {
            let p = e.map_err(ClinicalError::io(dir))?.path();
            if let Some(stem) = label_stem(&p) {
                m.insert(stem, p);
            }
        }
        Ok(m)
    };
    let (pm, tm) = (list(pred)?, list(truth)?);
    let mut pairs = Vec::new();
    for (name, p) in &pm {
        let t = tm.get(name).ok_or_else(|| {
            ClinicalError::format(
                truth,
                format!("no ground truth for case `{name}` ({})", p.display()),
            )
        })?;
        pairs.push(CasePair {
            name: name.clone(),
            pred: p.clone(),
            truth: t.clone(),
        });
    }
    if let Some(extra) = tm.keys().find(|k| !pm.contains_key(*k)) {
        return Err(ClinicalError::format(
            pred,
            format!("no prediction for case `{extra}`"),
        ));
    }
    if pairs.is_empty() {
        return Err(ClinicalError::format(
            pred,
            "no label volumes (NAME.nii.gz, NAME.nii, NAME.seg.dcm)",
        ));
    }
    Ok(pairs)
}

fn label_stem(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_string_lossy().into_owned();
    let lower = n.to_ascii_lowercase();
    for ext in [".seg.dcm", ".nii.gz", ".nii"] {
        if lower.ends_with(ext) {
            return Some(n[..n.len() - ext.len()].to_string());
        }
    }
    None
}
