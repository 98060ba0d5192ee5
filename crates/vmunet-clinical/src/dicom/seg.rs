//! DICOM Segmentation out (PS3.3 A.51): one segment per class, referencing the source series
//! (study, series, frame of reference, per-frame source instances and plane positions), coded
//! category and type per segment, the algorithm (vmunet version, model name and SHA-256);
//! BINARY (bit-packed frames, empty frames omitted) or LABELMAP (Label Map Segmentation
//! Storage, DICOM 2024c: one 8-bit frame per slice holding class numbers). And back in: a SEG
//! of either type to a label volume on a given grid (for evaluation).

use std::path::Path;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::attrs::Attrs;
use super::read::Instance;
use super::uid;
use crate::codes::{Code, SegmentCodes};
use crate::geometry::dot;
use crate::source::DicomRefs;
use crate::{ClinicalError, Geometry};

/// How segments are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegType {
    /// One bit per pixel, one frame per segment and slice (Segmentation Storage).
    #[default]
    Binary,
    /// One class number per pixel, one frame per slice (Label Map Segmentation Storage).
    Labelmap,
}

impl std::str::FromStr for SegType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "binary" => Ok(Self::Binary),
            "labelmap" => Ok(Self::Labelmap),
            o => Err(format!(
                "unknown SEG type `{o}` (expected binary or labelmap)"
            )),
        }
    }
}

impl SegType {
    /// The SOP class.
    pub fn sop_class(self) -> &'static str {
        match self {
            Self::Binary => uids::SEGMENTATION_STORAGE,
            Self::Labelmap => uids::LABEL_MAP_SEGMENTATION_STORAGE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Binary => "BINARY",
            Self::Labelmap => "LABELMAP",
        }
    }
}

/// One segment: class number `number` (the label value), its name and codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Segment number = class index (1-based; 0 is background and has no segment).
    pub number: u16,
    /// The class name (the segment label).
    pub name: String,
    /// What it is.
    pub codes: SegmentCodes,
}

/// What made the segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Algorithm {
    /// The model's name (its file name).
    pub model: String,
    /// SHA-256 of the model file (lowercase hex).
    pub model_sha256: String,
    /// vmunet's version.
    pub version: String,
}

/// What [`encode_seg`] wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegSummary {
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Series Instance UID of the SEG.
    pub series_instance_uid: String,
    /// Segmentation type.
    pub seg_type: SegType,
    /// Frames written (empty frames omitted).
    pub frames: usize,
    /// Segments described.
    pub segments: usize,
}

fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, v.into())
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn obj(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn ds(values: &[f64]) -> PrimitiveValue {
    // DS holds at most 16 characters per value.
    PrimitiveValue::Strs(
        values
            .iter()
            .map(|v| {
                let mut s = format!("{v:.10}");
                while s.len() > 16 || (s.contains('.') && (s.ends_with('0') || s.ends_with('.'))) {
                    if s.ends_with('.') {
                        s.pop();
                        break;
                    }
                    s.pop();
                }
                if s == "-0" {
                    s = "0".into();
                }
                s
            })
            .collect(),
    )
}

fn code_item(c: &Code) -> InMemDicomObject {
    obj(vec![
        el(tags::CODE_VALUE, VR::SH, c.code.as_str()),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.scheme.as_str()),
        el(tags::CODE_MEANING, VR::LO, c.meaning.as_str()),
    ])
}

/// Today's date and time in UTC as DICOM DA (`YYYYMMDD`) and TM (`HHMMSS`).
fn now() -> (String, String) {
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`
    let t = vmunet_deploy::utc_timestamp(vmunet_deploy::unix_now());
    (t[..10].replace('-', ""), t[11..19].replace(':', ""))
}

/// Packs `bits` (one bool per pixel) little-endian within each byte, as PS3.5 8.1.1 says.
fn pack_bits(bits: impl Iterator<Item = bool>, out: &mut Vec<u8>, bit_offset: &mut usize) {
    for b in bits {
        if (*bit_offset).is_multiple_of(8) {
            out.push(0);
        }
        if b {
            let last = out.len() - 1;
            out[last] |= 1 << (*bit_offset % 8);
        }
        *bit_offset += 1;
    }
}

/// A DICOM Segmentation of `labels` (source voxel order on `geometry`, the grid `refs` was
/// read on) as Part 10 bytes (Explicit VR Little Endian).
pub fn encode_seg(
    refs: &DicomRefs,
    geometry: &Geometry,
    labels: &[u8],
    segments: &[Segment],
    seg_type: SegType,
    algorithm: &Algorithm,
) -> Result<(Vec<u8>, SegSummary), ClinicalError> {
    let [cols, rows, depth] = geometry.dims;
    let plane = cols * rows;
    if cols > usize::from(u16::MAX) || rows > usize::from(u16::MAX) {
        return Err(ClinicalError::unsupported(
            refs.series_uid.as_str(),
            format!("a {cols}x{rows} image does not fit DICOM's 16-bit Rows / Columns"),
        ));
    }
    if labels.len() != geometry.len() || refs.slices.len() != depth {
        return Err(ClinicalError::Model {
            path: refs.series_uid.clone().into(),
            reason: format!(
                "{} labels and {} source images for a {cols}x{rows}x{depth} grid",
                labels.len(),
                refs.slices.len()
            ),
        });
    }
    let role = |r: &str| {
        uid::derived(&[
            &algorithm.model_sha256,
            &refs.series_uid,
            seg_type.name(),
            r,
        ])
    };
    let (series_uid, instance_uid, dim_uid) =
        (role("series"), role("instance"), role("dimensions"));
    let placed = refs.frame_of_reference_uid.is_some();
    let (date, time) = now();

    // Frames: (segment number or None for a label map frame, slice k).
    let mut frames: Vec<(Option<u16>, usize)> = Vec::new();
    match seg_type {
        SegType::Binary => {
            for s in segments {
                for k in 0..depth {
                    let slice = &labels[k * plane..(k + 1) * plane];
                    if slice.iter().any(|&l| u16::from(l) == s.number) {
                        frames.push((Some(s.number), k));
                    }
                }
            }
            if frames.is_empty() {
                // Nothing found: one empty frame keeps the object valid (as highdicom does).
                frames.push((segments.first().map(|s| s.number), 0));
            }
        }
        SegType::Labelmap => {
            for k in 0..depth {
                if labels[k * plane..(k + 1) * plane].iter().any(|&l| l != 0) {
                    frames.push((None, k));
                }
            }
            if frames.is_empty() {
                frames.push((None, 0));
            }
        }
    }

    let mut pixels = Vec::new();
    let mut bit = 0usize;
    let mut per_frame = Vec::with_capacity(frames.len());
    for &(segment, k) in &frames {
        let slice = &labels[k * plane..(k + 1) * plane];
        match segment {
            Some(s) => pack_bits(
                slice.iter().map(|&l| u16::from(l) == s),
                &mut pixels,
                &mut bit,
            ),
            None => pixels.extend_from_slice(slice),
        }
        let r = &refs.slices[k];
        let mut source = vec![
            el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, r.sop_class.as_str()),
            el(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                r.sop_instance.as_str(),
            ),
        ];
        if let Some(f) = r.frame {
            source.push(el(tags::REFERENCED_FRAME_NUMBER, VR::IS, f.to_string()));
        }
        // Every SEG pixel is the source pixel at the same place.
        source.push(el(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"));
        source.push(seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code_item(&Code {
                code: "121322".into(),
                scheme: "DCM".into(),
                meaning: "Source image for image processing operation".into(),
            })],
        ));
        let derivation = obj(vec![
            seq(
                tags::DERIVATION_CODE_SEQUENCE,
                vec![code_item(&Code {
                    code: "113076".into(),
                    scheme: "DCM".into(),
                    meaning: "Segmentation".into(),
                })],
            ),
            seq(tags::SOURCE_IMAGE_SEQUENCE, vec![obj(source)]),
        ]);
        let mut index = Vec::new();
        if let Some(s) = segment {
            index.push(u32::from(s));
        }
        if placed {
            index.push(k as u32 + 1);
        }
        if index.is_empty() {
            index.push(1);
        }
        let mut group = vec![
            seq(tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]),
            seq(
                tags::FRAME_CONTENT_SEQUENCE,
                vec![obj(vec![el(
                    tags::DIMENSION_INDEX_VALUES,
                    VR::UL,
                    PrimitiveValue::U32(index.into()),
                )])],
            ),
        ];
        if placed {
            let p = geometry.world(0.0, 0.0, k as f64);
            group.push(seq(
                tags::PLANE_POSITION_SEQUENCE,
                vec![obj(vec![el(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&p))])],
            ));
        }
        if let Some(s) = segment {
            group.push(seq(
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                vec![obj(vec![el(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    VR::US,
                    PrimitiveValue::from(s),
                )])],
            ));
        }
        per_frame.push(obj(group));
    }
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }

    let mut o = InMemDicomObject::new_empty();
    for e in refs.study.iter() {
        o.put(e.clone());
    }
    if o.get(tags::SPECIFIC_CHARACTER_SET).is_none() {
        o.put(el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    }
    for t in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
        tags::PATIENT_SEX,
        tags::STUDY_DATE,
        tags::STUDY_TIME,
        tags::REFERRING_PHYSICIAN_NAME,
        tags::STUDY_ID,
        tags::ACCESSION_NUMBER,
    ] {
        // Type 2 attributes: present, empty when the source lacks them.
        if o.get(t).is_none() {
            let vr = match t {
                tags::PATIENT_NAME | tags::REFERRING_PHYSICIAN_NAME => VR::PN,
                tags::PATIENT_BIRTH_DATE | tags::STUDY_DATE => VR::DA,
                tags::STUDY_TIME => VR::TM,
                tags::PATIENT_SEX => VR::CS,
                tags::STUDY_ID | tags::ACCESSION_NUMBER => VR::SH,
                _ => VR::LO,
            };
            o.put(DataElement::new(t, vr, PrimitiveValue::Empty));
        }
    }
    o.put(el(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        refs.study_uid.as_str(),
    ));
    o.put(el(tags::SOP_CLASS_UID, VR::UI, seg_type.sop_class()));
    o.put(el(tags::SOP_INSTANCE_UID, VR::UI, instance_uid.as_str()));
    o.put(el(tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str()));
    o.put(el(tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str()));
    o.put(el(tags::MODALITY, VR::CS, "SEG"));
    o.put(el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()));
    o.put(el(tags::SERIES_NUMBER, VR::IS, "901"));
    o.put(el(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        format!("vmunet {}", algorithm.model),
    ));
    o.put(el(tags::SERIES_DATE, VR::DA, date.as_str()));
    o.put(el(tags::SERIES_TIME, VR::TM, time.as_str()));
    if let Some(f) = &refs.frame_of_reference_uid {
        o.put(el(tags::FRAME_OF_REFERENCE_UID, VR::UI, f.as_str()));
        o.put(DataElement::new(
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            PrimitiveValue::Empty,
        ));
    } else {
        // No plane geometry (a photo): Patient Orientation is required, empty when unknown.
        o.put(DataElement::new(
            tags::PATIENT_ORIENTATION,
            VR::CS,
            PrimitiveValue::Empty,
        ));
    }
    o.put(el(tags::MANUFACTURER, VR::LO, "vmunet"));
    o.put(el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "vmunet"));
    o.put(el(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &algorithm.model_sha256[..16.min(algorithm.model_sha256.len())],
    ));
    o.put(el(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        algorithm.version.as_str(),
    ));
    o.put(el(tags::INSTANCE_NUMBER, VR::IS, "1"));
    o.put(el(tags::CONTENT_DATE, VR::DA, date.as_str()));
    o.put(el(tags::CONTENT_TIME, VR::TM, time.as_str()));
    o.put(el(
        tags::IMAGE_TYPE,
        VR::CS,
        PrimitiveValue::Strs(["DERIVED".to_string(), "PRIMARY".to_string()].into()),
    ));
    o.put(el(tags::CONTENT_LABEL, VR::CS, "VMUNET"));
    o.put(el(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        format!("VM-UNet segmentation ({})", algorithm.model),
    ));
    o.put(el(tags::CONTENT_CREATOR_NAME, VR::PN, "vmunet^"));
    o.put(el(tags::SEGMENTATION_TYPE, VR::CS, seg_type.name()));
    o.put(el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    o.put(el(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1_u16),
    ));
    o.put(el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    o.put(el(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16)));
    o.put(el(tags::COLUMNS, VR::US, PrimitiveValue::from(cols as u16)));
    let bits: u16 = if seg_type == SegType::Binary { 1 } else { 8 };
    o.put(el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits)));
    o.put(el(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits)));
    o.put(el(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits - 1)));
    o.put(el(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    ));
    o.put(el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()));

    let algorithm_item = obj(vec![
        seq(
            tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
            vec![code_item(&Code {
                code: "123110".into(),
                scheme: "DCM".into(),
                meaning: "Artificial Intelligence".into(),
            })],
        ),
        el(
            tags::ALGORITHM_NAME,
            VR::LO,
            format!("vmunet {}", algorithm.model),
        ),
        el(tags::ALGORITHM_VERSION, VR::LO, algorithm.version.as_str()),
        el(
            tags::ALGORITHM_PARAMETERS,
            VR::LT,
            format!("model_sha256={}", algorithm.model_sha256),
        ),
    ]);
    let segment_items = segments
        .iter()
        .map(|s| {
            let mut v = vec![
                el(tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(s.number)),
                el(tags::SEGMENT_LABEL, VR::LO, s.name.as_str()),
                el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
                el(
                    tags::SEGMENT_ALGORITHM_NAME,
                    VR::LO,
                    format!("vmunet {}", algorithm.model),
                ),
                seq(
                    tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
                    vec![algorithm_item.clone()],
                ),
                seq(
                    tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                    vec![code_item(&s.codes.category)],
                ),
                seq(
                    tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                    vec![code_item(&s.codes.kind)],
                ),
            ];
            if let Some(r) = &s.codes.region {
                v.push(seq(tags::ANATOMIC_REGION_SEQUENCE, vec![code_item(r)]));
            }
            obj(v)
        })
        .collect();
    o.put(seq(tags::SEGMENT_SEQUENCE, segment_items));

    // Shared: pixel measures and orientation (placed sources).
    let mut shared = Vec::new();
    let (sp, axes) = (geometry.spacing, geometry.axes);
    if placed {
        shared.push(seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![obj(vec![
                el(tags::PIXEL_SPACING, VR::DS, ds(&[sp[1], sp[0]])),
                el(tags::SLICE_THICKNESS, VR::DS, ds(&[sp[2]])),
                el(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[sp[2]])),
            ])],
        ));
        let iop = [
            axes[0][0], axes[0][1], axes[0][2], axes[1][0], axes[1][1], axes[1][2],
        ];
        shared.push(seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![obj(vec![el(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&iop),
            )])],
        ));
    }
    o.put(seq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![obj(shared)],
    ));
    o.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));

    // Dimensions: segment (binary), then position (placed sources).
    o.put(seq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![obj(vec![el(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            dim_uid.as_str(),
        )])],
    ));
    let mut dims = Vec::new();
    if seg_type == SegType::Binary {
        dims.push(obj(vec![
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid.as_str()),
            el(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(std::iter::once(tags::REFERENCED_SEGMENT_NUMBER).collect()),
            ),
            el(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(
                    std::iter::once(tags::SEGMENT_IDENTIFICATION_SEQUENCE).collect(),
                ),
            ),
            el(
                tags::DIMENSION_DESCRIPTION_LABEL,
                VR::LO,
                "ReferencedSegmentNumber",
            ),
        ]));
    }
    if placed || dims.is_empty() {
        dims.push(obj(vec![
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid.as_str()),
            el(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(std::iter::once(tags::IMAGE_POSITION_PATIENT).collect()),
            ),
            el(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(std::iter::once(tags::PLANE_POSITION_SEQUENCE).collect()),
            ),
            el(
                tags::DIMENSION_DESCRIPTION_LABEL,
                VR::LO,
                "ImagePositionPatient",
            ),
        ]));
    }
    o.put(seq(tags::DIMENSION_INDEX_SEQUENCE, dims));

    // Common Instance Reference: every source instance referenced, once.
    let mut seen = std::collections::BTreeSet::new();
    let instances = refs
        .slices
        .iter()
        .filter(|r| seen.insert(r.sop_instance.clone()))
        .map(|r| {
            obj(vec![
                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, r.sop_class.as_str()),
                el(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    r.sop_instance.as_str(),
                ),
            ])
        })
        .collect();
    o.put(seq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![obj(vec![
            el(tags::SERIES_INSTANCE_UID, VR::UI, refs.series_uid.as_str()),
            seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
        ])],
    ));
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));

    let file = o
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_version_name(format!(
                    "VMUNET_{}",
                    algorithm.version.replace('.', "_")
                )),
        )
        .map_err(|e| {
            ClinicalError::format(refs.series_uid.as_str(), format!("SEG file meta: {e}"))
        })?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| {
        ClinicalError::format(refs.series_uid.as_str(), format!("encoding the SEG: {e}"))
    })?;
    Ok((
        bytes,
        SegSummary {
            sop_class_uid: seg_type.sop_class().to_string(),
            sop_instance_uid: instance_uid,
            series_instance_uid: series_uid,
            seg_type,
            frames: frames.len(),
            segments: segments.len(),
        },
    ))
}

/// Reads a DICOM Segmentation (BINARY or LABELMAP) as labels on `grid` (the grid of the
/// series it segments, in any axis order, e.g. a reference NIfTI): every pixel of every frame
/// is placed at its world position (the frame's plane position and the SEG's orientation and
/// pixel spacing) and must land on a voxel of `grid`; voxels of segment `n` get label `n`. A
/// SEG without plane positions (a photo) must have one frame per slice of `grid`, in order.
pub fn read_seg_labels(path: &Path, grid: &Geometry) -> Result<Vec<u8>, ClinicalError> {
    let inst = Instance::open(path, false)?;
    let a = Attrs::new(&inst.obj, path);
    let class = a.str(tags::SOP_CLASS_UID, "SOPClassUID")?;
    match class.as_str() {
        uids::SEGMENTATION_STORAGE | uids::LABEL_MAP_SEGMENTATION_STORAGE => {}
        o => {
            return Err(ClinicalError::unsupported(
                path,
                format!("SOP class {o} is not a DICOM Segmentation"),
            ))
        }
    }
    let kind = a.opt_str(tags::SEGMENTATION_TYPE).unwrap_or_default();
    let (rows, cols) = (
        a.uint(tags::ROWS, "Rows")?,
        a.uint(tags::COLUMNS, "Columns")?,
    );
    let frames = a
        .opt_int(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?
        .unwrap_or(1)
        .max(1) as usize;
    let bits = a.uint(tags::BITS_ALLOCATED, "BitsAllocated")?;
    let pixels = inst
        .obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| ClinicalError::format(path, "no pixel data"))?
        .to_bytes()
        .map_err(|e| ClinicalError::format(path, format!("unreadable pixel data: {e}")))?;
    let plane = rows * cols;
    let need = match (bits, kind.as_str()) {
        (1, "BINARY") => (frames * plane).div_ceil(8),
        (8, _) => frames * plane,
        _ => {
            return Err(ClinicalError::unsupported(
                path,
                format!("SegmentationType {kind} with {bits} bits allocated (BINARY 1-bit and 8-bit are read)"),
            ))
        }
    };
    if pixels.len() < need {
        return Err(ClinicalError::format(
            path,
            format!("{} pixel bytes, {frames} frames need {need}", pixels.len()),
        ));
    }
    let shared = a.item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = a.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let find = |f: usize, seq_tag: Tag| -> Option<&InMemDicomObject> {
        per_frame
            .get(f)
            .and_then(|g| Attrs::new(g, path).item(seq_tag))
            .or_else(|| shared.and_then(|g| Attrs::new(g, path).item(seq_tag)))
    };
    let pixel = |f: usize, p: usize| -> u8 {
        if bits == 1 {
            let b = f * plane + p;
            (pixels[b / 8] >> (b % 8)) & 1
        } else {
            pixels[f * plane + p]
        }
    };
    let mut labels = vec![0u8; grid.len()];
    for f in 0..frames {
        let segment = find(f, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .map(|s| {
                Attrs::new(s, path).uint(tags::REFERENCED_SEGMENT_NUMBER, "ReferencedSegmentNumber")
            })
            .transpose()?;
        let value = |v: u8| -> u8 {
            match segment {
                Some(s) => s as u8,
                None => v,
            }
        };
        let position = match find(f, tags::PLANE_POSITION_SEQUENCE) {
            Some(p) => Attrs::new(p, path).opt_f64s(
                tags::IMAGE_POSITION_PATIENT,
                "ImagePositionPatient",
                3,
            )?,
            None => None,
        };
        let Some(pos) = position else {
            if frames != grid.dims[2] || [cols, rows] != [grid.dims[0], grid.dims[1]] {
                return Err(ClinicalError::format(
                    path,
                    format!("frame {} has no plane position and the SEG ({cols}x{rows}, {frames} frames) is not the reference grid", f + 1),
                ));
            }
            for p in 0..plane {
                let v = pixel(f, p);
                if v != 0 {
                    labels[f * plane + p] = value(v);
                }
            }
            continue;
        };
        let iop = find(f, tags::PLANE_ORIENTATION_SEQUENCE)
            .map(|o| {
                Attrs::new(o, path).opt_f64s(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    "ImageOrientationPatient",
                    6,
                )
            })
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ClinicalError::format(path, format!("frame {} has no plane orientation", f + 1))
            })?;
        let spacing = find(f, tags::PIXEL_MEASURES_SEQUENCE)
            .map(|o| Attrs::new(o, path).opt_f64s(tags::PIXEL_SPACING, "PixelSpacing", 2))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ClinicalError::format(path, format!("frame {} has no pixel spacing", f + 1))
            })?;
        let (row_dir, col_dir) = ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
        // Voxel coordinates of the frame's first pixel and of one step along rows and columns.
        let to_voxel = |w: [f64; 3]| -> [f64; 3] {
            let d = [
                w[0] - grid.origin[0],
                w[1] - grid.origin[1],
                w[2] - grid.origin[2],
            ];
            [0, 1, 2].map(|a| dot(d, grid.axes[a]) / grid.spacing[a])
        };
        let v0 = to_voxel([pos[0], pos[1], pos[2]]);
        let step = |dir: [f64; 3], s: f64| -> [f64; 3] {
            [0, 1, 2].map(|a| dot(dir, grid.axes[a]) * s / grid.spacing[a])
        };
        let (dc, dr) = (step(row_dir, spacing[1]), step(col_dir, spacing[0]));
        for r in 0..rows {
            for c in 0..cols {
                let v = pixel(f, r * cols + c);
                if v == 0 {
                    continue;
                }
                let x = [0, 1, 2].map(|a| v0[a] + c as f64 * dc[a] + r as f64 * dr[a]);
                let idx = x.map(f64::round);
                let off = (0..3).any(|a| {
                    (x[a] - idx[a]).abs() > 0.1 || idx[a] < 0.0 || idx[a] as usize >= grid.dims[a]
                });
                if off {
                    return Err(ClinicalError::format(
                        path,
                        format!("frame {} pixel (row {r}, column {c}) is not on a voxel of the reference grid", f + 1),
                    ));
                }
                labels[grid.index(idx[0] as usize, idx[1] as usize, idx[2] as usize)] = value(v);
            }
        }
    }
    Ok(labels)
}
