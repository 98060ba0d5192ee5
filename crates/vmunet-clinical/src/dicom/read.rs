//! DICOM in: a folder (the instances of one series picked by rule, sorted along the slice
//! normal by Image Position / Orientation Patient, never by file name) or one file (single-
//! or multi-frame, grey or colour), to a [`Source`]: Hounsfield units (or the modality's
//! rescaled values) on a [`Geometry`], or a photo.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};

use super::attrs::Attrs;
use super::classes::is_image_storage;
use super::pixels::{decode_frames, Frame};
use crate::geometry::{cross, dot, norm};
use crate::source::{source_name, Content, DicomRefs, InstanceRef, Scan, SeriesSummary};
use crate::{ClinicalError, Geometry, Source, SourceFormat};

/// The attributes of the Patient and General Study modules a result copies from its source.
pub const STUDY_TAGS: &[dicom_core::Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::STUDY_DESCRIPTION,
];

/// Whether the file at `path` starts like a DICOM Part 10 file (preamble + `DICM`, or `DICM`).
pub fn looks_like_dicom(path: &Path) -> bool {
    let mut head = [0u8; 132];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    (n >= 132 && &head[128..132] == b"DICM") || (n >= 4 && &head[..4] == b"DICM")
}

/// A file's data set (all of it, or up to its pixel data) and transfer syntax.
pub struct Instance {
    /// The file.
    pub path: PathBuf,
    /// Its data set.
    pub obj: InMemDicomObject,
    /// Its transfer syntax UID.
    pub ts: String,
}

impl Instance {
    /// Reads `path` (`headers_only`: up to the pixel data).
    pub fn open(path: &Path, headers_only: bool) -> Result<Self, ClinicalError> {
        let mut opts = OpenFileOptions::new();
        if headers_only {
            opts = opts.read_until(tags::PIXEL_DATA);
        }
        let file = opts.open_file(path).map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            ClinicalError::format(path, format!("not a readable DICOM file: {msg}"))
        })?;
        let ts = file.meta().transfer_syntax().to_string();
        Ok(Self {
            path: path.to_path_buf(),
            obj: file.into_inner(),
            ts,
        })
    }

    fn attrs(&self) -> Attrs<'_> {
        Attrs::new(&self.obj, &self.path)
    }
}

/// Reads a DICOM folder (a series) or file.
pub fn read_dicom(path: &Path) -> Result<Source, ClinicalError> {
    read_dicom_series(path, None)
}

/// [`read_dicom`], segmenting the series `series` (a Series Instance UID) of a folder instead
/// of the one the rule picks.
pub fn read_dicom_series(path: &Path, series: Option<&str>) -> Result<Source, ClinicalError> {
    if path.is_dir() {
        read_folder_series(path, series)
    } else {
        read_file(path)
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ClinicalError> {
    let entries = std::fs::read_dir(dir).map_err(ClinicalError::io(dir))?;
    for e in entries {
        let e = e.map_err(ClinicalError::io(dir))?;
        let p = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn summary(uid: &str, members: &[Instance]) -> SeriesSummary {
    let first = members[0].attrs();
    SeriesSummary {
        series_uid: uid.to_string(),
        description: first.opt_str(tags::SERIES_DESCRIPTION),
        modality: first.opt_str(tags::MODALITY),
        images: members
            .iter()
            .map(|m| {
                m.attrs()
                    .opt_int(tags::NUMBER_OF_FRAMES, "NumberOfFrames")
                    .ok()
                    .flatten()
                    .unwrap_or(1)
                    .max(1) as usize
            })
            .sum(),
    }
}

/// Reads a folder: every DICOM image file under it, grouped by series; the series with the
/// most images is segmented (ties: the lowest Series Number, then UID), the others reported.
pub fn read_folder(dir: &Path) -> Result<Source, ClinicalError> {
    read_folder_series(dir, None)
}

/// [`read_folder`] with the series to segment named (`None`: the rule's).
pub fn read_folder_series(dir: &Path, wanted: Option<&str>) -> Result<Source, ClinicalError> {
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    files.sort();
    let mut skipped = Vec::new();
    let mut non_image = BTreeMap::<String, usize>::new();
    let mut series: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for f in files {
        if !looks_like_dicom(&f) {
            skipped.push(f);
            continue;
        }
        let inst = Instance::open(&f, true)?;
        let a = inst.attrs();
        let class = a.str(tags::SOP_CLASS_UID, "SOPClassUID")?;
        if !is_image_storage(&class) {
            *non_image.entry(class).or_default() += 1;
            skipped.push(f);
            continue;
        }
        let uid = a.str(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
        series.entry(uid).or_default().push(inst);
    }
    if series.is_empty() {
        let why = if non_image.is_empty() {
            "no DICOM image file in the folder".to_string()
        } else {
            format!(
                "no DICOM image in the folder (found only non-image SOP classes: {})",
                non_image.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        return Err(ClinicalError::series(dir, why));
    }
    let mut ranked: Vec<(String, Vec<Instance>)> = series.into_iter().collect();
    let number = |m: &[Instance]| {
        m[0].attrs()
            .opt_int(tags::SERIES_NUMBER, "SeriesNumber")
            .ok()
            .flatten()
            .unwrap_or(i64::MAX)
    };
    ranked.sort_by(|a, b| {
        let (sa, sb) = (summary(&a.0, &a.1).images, summary(&b.0, &b.1).images);
        sb.cmp(&sa)
            .then(number(&a.1).cmp(&number(&b.1)))
            .then(a.0.cmp(&b.0))
    });
    if let Some(w) = wanted {
        let Some(at) = ranked.iter().position(|(u, _)| u == w) else {
            let found: Vec<String> = ranked
                .iter()
                .map(|(u, m)| format!("{u} ({} images)", summary(u, m).images))
                .collect();
            return Err(ClinicalError::series(
                dir,
                format!("no series {w} in the folder (found: {})", found.join(", ")),
            ));
        };
        let chosen = ranked.remove(at);
        ranked.insert(0, chosen);
    }
    let others: Vec<SeriesSummary> = ranked[1..].iter().map(|(u, m)| summary(u, m)).collect();
    let (uid, members) = ranked.remove(0);
    let chosen = summary(&uid, &members);
    let mut source = assemble(dir, SourceFormat::DicomSeries, members)?;
    if let Some(d) = source.dicom.as_mut() {
        d.chosen = chosen;
        d.others = others;
        d.skipped = skipped;
    }
    Ok(source)
}

/// Reads one DICOM file (a single image, a photo or a multi-frame volume).
pub fn read_file(path: &Path) -> Result<Source, ClinicalError> {
    if !looks_like_dicom(path) {
        return Err(ClinicalError::format(
            path,
            "not a DICOM file (no `DICM` marker after the 128-byte preamble)",
        ));
    }
    let inst = Instance::open(path, true)?;
    let a = inst.attrs();
    let class = a.str(tags::SOP_CLASS_UID, "SOPClassUID")?;
    if !is_image_storage(&class) {
        return Err(ClinicalError::unsupported(
            path,
            format!(
                "SOP class {class} is not an image this toolkit segments (CT, MR, PET, secondary capture, VL photographic)"
            ),
        ));
    }
    let uid = a.str(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let members = vec![inst];
    let chosen = summary(&uid, &members);
    let mut source = assemble(path, SourceFormat::DicomFile, members)?;
    if let Some(d) = source.dicom.as_mut() {
        d.chosen = chosen;
    }
    Ok(source)
}

/// Rescale slope and intercept of a frame: the per-frame, then shared Pixel Value
/// Transformation, then the top-level attributes; default 1 and 0.
fn rescale(
    obj: &InMemDicomObject,
    per_frame: Option<&InMemDicomObject>,
    path: &Path,
) -> Result<(f64, f64), ClinicalError> {
    let shared = Attrs::new(obj, path).item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    for group in [per_frame, shared].into_iter().flatten() {
        if let Some(t) = Attrs::new(group, path).item(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
            let t = Attrs::new(t, path);
            return Ok((
                t.opt_f64(tags::RESCALE_SLOPE, "RescaleSlope")?
                    .unwrap_or(1.0),
                t.opt_f64(tags::RESCALE_INTERCEPT, "RescaleIntercept")?
                    .unwrap_or(0.0),
            ));
        }
    }
    let a = Attrs::new(obj, path);
    Ok((
        a.opt_f64(tags::RESCALE_SLOPE, "RescaleSlope")?
            .unwrap_or(1.0),
        a.opt_f64(tags::RESCALE_INTERCEPT, "RescaleIntercept")?
            .unwrap_or(0.0),
    ))
}

/// The place of one slice: position, orientation (row and column directions), pixel spacing
/// (between rows, between columns) and thickness.
#[derive(Debug, Clone, Copy)]
struct Plane {
    position: [f64; 3],
    row_dir: [f64; 3],
    col_dir: [f64; 3],
    pixel_spacing: [f64; 2],
    thickness: Option<f64>,
}

fn arr3(v: &[f64]) -> [f64; 3] {
    [v[0], v[1], v[2]]
}

/// The plane of a classic image, or of frame `per_frame` of an enhanced one; `None` when the
/// data set gives no position or orientation.
fn plane(
    obj: &InMemDicomObject,
    per_frame: Option<&InMemDicomObject>,
    path: &Path,
) -> Result<Option<Plane>, ClinicalError> {
    let a = Attrs::new(obj, path);
    let shared = a.item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let find = |seq: dicom_core::Tag| -> Option<&InMemDicomObject> {
        per_frame
            .and_then(|g| Attrs::new(g, path).item(seq))
            .or_else(|| shared.and_then(|g| Attrs::new(g, path).item(seq)))
    };
    let (pos_src, ori_src, px_src) = if per_frame.is_some() || shared.is_some() {
        (
            find(tags::PLANE_POSITION_SEQUENCE),
            find(tags::PLANE_ORIENTATION_SEQUENCE),
            find(tags::PIXEL_MEASURES_SEQUENCE),
        )
    } else {
        (Some(obj), Some(obj), Some(obj))
    };
    let pos = match pos_src {
        Some(o) => {
            Attrs::new(o, path).opt_f64s(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3)?
        }
        None => None,
    };
    let ori = match ori_src {
        Some(o) => Attrs::new(o, path).opt_f64s(
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            6,
        )?,
        None => None,
    };
    let (Some(pos), Some(ori)) = (pos, ori) else {
        return Ok(None);
    };
    let (spacing, thickness) = match px_src {
        Some(o) => {
            let p = Attrs::new(o, path);
            let s = match p.opt_f64s(tags::PIXEL_SPACING, "PixelSpacing", 2)? {
                Some(s) => Some(s),
                None => a.opt_f64s(tags::IMAGER_PIXEL_SPACING, "ImagerPixelSpacing", 2)?,
            };
            (s, p.opt_f64(tags::SLICE_THICKNESS, "SliceThickness")?)
        }
        None => (None, None),
    };
    let spacing = spacing.unwrap_or_else(|| vec![1.0, 1.0]);
    if spacing.iter().any(|&s| s <= 0.0) {
        return Err(ClinicalError::format(
            path,
            format!("PixelSpacing {spacing:?} is not positive"),
        ));
    }
    let (r, c) = (arr3(&ori[..3]), arr3(&ori[3..]));
    let (nr, nc) = (norm(r), norm(c));
    if (nr - 1.0).abs() > 1e-2 || (nc - 1.0).abs() > 1e-2 || dot(r, c).abs() > 1e-2 {
        return Err(ClinicalError::format(
            path,
            format!("ImageOrientationPatient {ori:?} is not two orthogonal unit vectors"),
        ));
    }
    Ok(Some(Plane {
        position: arr3(&pos),
        row_dir: r.map(|v| v / nr),
        col_dir: c.map(|v| v / nc),
        pixel_spacing: [spacing[0], spacing[1]],
        thickness,
    }))
}

/// One slice before sorting.
struct Slice {
    plane: Option<Plane>,
    values: Vec<f32>,
    reference: InstanceRef,
    path: PathBuf,
}

fn assemble(
    path: &Path,
    format: SourceFormat,
    members: Vec<Instance>,
) -> Result<Source, ClinicalError> {
    let first = &members[0];
    let a = first.attrs();
    let study = {
        let mut s = InMemDicomObject::new_empty();
        for t in STUDY_TAGS {
            if let Some(e) = first.obj.get(*t) {
                s.put(e.clone());
            }
        }
        s
    };
    let study_uid = a.str(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let series_uid = a.str(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let frame_of_reference_uid = a.opt_str(tags::FRAME_OF_REFERENCE_UID);
    let modality = a.opt_str(tags::MODALITY).unwrap_or_else(|| "OT".into());
    let (rows, cols) = (
        a.uint(tags::ROWS, "Rows")?,
        a.uint(tags::COLUMNS, "Columns")?,
    );
    let multi = members.len() > 1;
    let mut slices = Vec::new();
    let mut photo = None;
    for m in &members {
        let ma = m.attrs();
        let (r, c) = (
            ma.uint(tags::ROWS, "Rows")?,
            ma.uint(tags::COLUMNS, "Columns")?,
        );
        if (r, c) != (rows, cols) {
            return Err(ClinicalError::series(
                path,
                format!(
                    "{} is {c}x{r} pixels, {} is {cols}x{rows}: one series must have one image size",
                    m.path.display(),
                    first.path.display()
                ),
            ));
        }
        let full = Instance::open(&m.path, false)?;
        let class = ma.str(tags::SOP_CLASS_UID, "SOPClassUID")?;
        let instance = ma.str(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
        let (fmt, frames) = decode_frames(&full.obj, &full.ts, &m.path)?;
        let per_frame =
            Attrs::new(&full.obj, &m.path).items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        if fmt.frames > 1 && !per_frame.is_empty() && per_frame.len() != fmt.frames {
            return Err(ClinicalError::format(
                &m.path,
                format!(
                    "{} frames but {} per-frame functional groups",
                    fmt.frames,
                    per_frame.len()
                ),
            ));
        }
        for (fi, frame) in frames.into_iter().enumerate() {
            let group = per_frame.get(fi);
            let reference = InstanceRef {
                sop_class: class.clone(),
                sop_instance: instance.clone(),
                frame: (fmt.frames > 1).then_some(fi + 1),
            };
            match frame {
                Frame::Rgb(img) => {
                    if multi || fmt.frames > 1 {
                        return Err(ClinicalError::unsupported(
                            path,
                            "a series of several colour images: segment each file on its own",
                        ));
                    }
                    let spacing = Attrs::new(&full.obj, &m.path)
                        .opt_f64s(tags::PIXEL_SPACING, "PixelSpacing", 2)?
                        .unwrap_or_else(|| vec![1.0, 1.0]);
                    let mut g = Geometry::unit([cols, rows, 1]);
                    g.spacing = [spacing[1], spacing[0], 1.0];
                    photo = Some((image::DynamicImage::ImageRgb8(img), g, reference));
                }
                Frame::Grey(values) => {
                    let (slope, intercept) = rescale(&full.obj, group, &m.path)?;
                    let values = values
                        .into_iter()
                        .map(|v| (f64::from(v) * slope + intercept) as f32)
                        .collect();
                    slices.push(Slice {
                        plane: plane(&full.obj, group, &m.path)?,
                        values,
                        reference,
                        path: m.path.clone(),
                    });
                }
            }
        }
    }
    let refs = |slices: Vec<InstanceRef>| DicomRefs {
        study: study.clone(),
        study_uid: study_uid.clone(),
        series_uid: series_uid.clone(),
        frame_of_reference_uid: frame_of_reference_uid.clone(),
        modality: modality.clone(),
        slices,
        chosen: SeriesSummary {
            series_uid: series_uid.clone(),
            description: None,
            modality: Some(modality.clone()),
            images: 0,
        },
        others: Vec::new(),
        skipped: Vec::new(),
    };
    if let Some((image, geometry, reference)) = photo {
        return Ok(Source {
            path: path.to_path_buf(),
            name: source_name(path),
            format,
            content: Content::Photo { image, geometry },
            dicom: Some(refs(vec![reference])),
        });
    }
    let (geometry, slices) = stack(path, slices, rows, cols)?;
    let mut voxels = Vec::with_capacity(geometry.len());
    let mut instances = Vec::with_capacity(slices.len());
    for s in slices {
        voxels.extend(s.values);
        instances.push(s.reference);
    }
    Ok(Source {
        path: path.to_path_buf(),
        name: source_name(path),
        format,
        content: Content::Volume(Scan { voxels, geometry }),
        dicom: Some(refs(instances)),
    })
}

/// Sorts slices along their normal and checks that they make one regular volume.
fn stack(
    path: &Path,
    mut slices: Vec<Slice>,
    rows: usize,
    cols: usize,
) -> Result<(Geometry, Vec<Slice>), ClinicalError> {
    let n = slices.len();
    let placed = slices.iter().filter(|s| s.plane.is_some()).count();
    if placed == 0 {
        // No position in space (e.g. secondary capture): the frames in file order, unit grid.
        return Ok((Geometry::unit([cols, rows, n]), slices));
    }
    if placed < n {
        let lost = slices
            .iter()
            .find(|s| s.plane.is_none())
            .map(|s| s.path.display().to_string());
        return Err(ClinicalError::series(
            path,
            format!(
                "{} has no Image Position / Orientation (Patient) while other images of the series do",
                lost.unwrap_or_default()
            ),
        ));
    }
    let p0 = slices[0]
        .plane
        .unwrap_or_else(|| unreachable!("every slice is placed"));
    for s in &slices {
        let p = s.plane.unwrap_or(p0);
        let differs = |a: [f64; 3], b: [f64; 3]| (0..3).any(|i| (a[i] - b[i]).abs() > 1e-3);
        if differs(p.row_dir, p0.row_dir) || differs(p.col_dir, p0.col_dir) {
            return Err(ClinicalError::series(
                path,
                format!(
                    "mixed orientations: {} has ImageOrientationPatient {:?}\\{:?}, {} has {:?}\\{:?}",
                    s.path.display(),
                    p.row_dir,
                    p.col_dir,
                    slices[0].path.display(),
                    p0.row_dir,
                    p0.col_dir
                ),
            ));
        }
        if (p.pixel_spacing[0] - p0.pixel_spacing[0]).abs() > 1e-4
            || (p.pixel_spacing[1] - p0.pixel_spacing[1]).abs() > 1e-4
        {
            return Err(ClinicalError::series(
                path,
                format!(
                    "mixed pixel spacings: {} has {:?}, {} has {:?}",
                    s.path.display(),
                    p.pixel_spacing,
                    slices[0].path.display(),
                    p0.pixel_spacing
                ),
            ));
        }
    }
    let normal = cross(p0.row_dir, p0.col_dir);
    let at = |s: &Slice| dot(s.plane.map_or([0.0; 3], |p| p.position), normal);
    slices.sort_by(|a, b| at(a).total_cmp(&at(b)));
    let mut step = p0.thickness.filter(|t| *t > 0.0).unwrap_or(1.0);
    if n > 1 {
        let gaps: Vec<f64> = slices.windows(2).map(|w| at(&w[1]) - at(&w[0])).collect();
        for (i, g) in gaps.iter().enumerate() {
            if *g < 1e-3 {
                return Err(ClinicalError::series(
                    path,
                    format!(
                        "{} and {} lie at the same position along the slice normal ({:.3} mm)",
                        slices[i].path.display(),
                        slices[i + 1].path.display(),
                        at(&slices[i])
                    ),
                ));
            }
        }
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        for (i, g) in gaps.iter().enumerate() {
            if (g - median).abs() > (0.05 * median).max(0.01) {
                let missing = (g / median).round() as i64 - 1;
                let what = if missing >= 1 {
                    format!("a gap: about {missing} slice(s) missing")
                } else {
                    "irregular slice spacing".to_string()
                };
                return Err(ClinicalError::series(
                    path,
                    format!(
                        "{what} between {} (at {:.3} mm) and {} (at {:.3} mm): {:.3} mm apart where the series spaces slices {:.3} mm",
                        slices[i].path.display(),
                        at(&slices[i]),
                        slices[i + 1].path.display(),
                        at(&slices[i + 1]),
                        g,
                        median
                    ),
                ));
            }
        }
        // Stacked along the normal (no gantry tilt, no shear): every position on one line.
        let first = slices[0].plane.map_or([0.0; 3], |p| p.position);
        for s in &slices[1..] {
            let p = s.plane.map_or([0.0; 3], |p| p.position);
            let d = [p[0] - first[0], p[1] - first[1], p[2] - first[2]];
            let along = dot(d, normal);
            let off = norm([
                d[0] - along * normal[0],
                d[1] - along * normal[1],
                d[2] - along * normal[2],
            ]);
            if off > 0.01 * along.abs().max(1.0) {
                return Err(ClinicalError::unsupported(
                    path,
                    format!(
                        "{} is {off:.3} mm off the slice normal through the first slice: gantry-tilted or sheared series are not read",
                        s.path.display()
                    ),
                ));
            }
        }
        step = median;
    }
    let first = slices[0].plane.unwrap_or(p0);
    let geometry = Geometry {
        dims: [cols, rows, n],
        origin: first.position,
        axes: [p0.row_dir, p0.col_dir, normal],
        spacing: [p0.pixel_spacing[1], p0.pixel_spacing[0], step],
    };
    Ok((geometry, slices))
}
