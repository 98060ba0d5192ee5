#!/usr/bin/env python3
"""Deterministic clinical-format fixtures for the vmunet DICOM / NIfTI path.

    make_fixtures.py OUT_DIR [--photo PATH_TO_JPEG] [--seed N]

Writes (see tests/clinical/README.md for the full list):
  OUT/ct/                 CT Image Storage series, Explicit VR LE, uint16 + intercept -1024,
                          oblique orientation, anisotropic pixels, shuffled names and InstanceNumbers
  OUT/ct-implicit/        the same slices, Implicit VR LE, int16, intercept 0 (new series/SOP UIDs)
  OUT/ct.nii.gz           the same HU voxels as NIfTI-1 (RAS affine) with a different voxel axis order
  OUT/ct_labels.nii.gz    ground truth (Synapse labels 0..8) on the NIfTI grid
  OUT/two-series/         ct/ plus a 3-slice "scout" series of the same study
  OUT/photo.dcm, photo.jpg  VL Photographic Image, JPEG Baseline (YBR_FULL_422), encapsulated bytes
  OUT/enhanced-ct.dcm     Enhanced CT multi-frame (shuffled frames) with functional groups
  OUT/bad/...             inputs a reader must reject
  OUT/fixtures.json       manifest (UIDs, geometry, affines, shapes, class names)

Everything is re-read with pydicom / nibabel at the end and compared; the script exits non-zero
if any check fails.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import math
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np

try:
    import nibabel as nib
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
    )
    from PIL import Image
except ImportError as e:  # pragma: no cover
    sys.exit(f"make_fixtures: missing Python package ({e}); pip install -r tests/clinical/requirements.txt")

CLASS_NAMES = ["background", "aorta", "gallbladder", "kidney_l", "kidney_r", "liver", "pancreas",
               "spleen", "stomach"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
VL_PHOTO_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

# Grid: 20 slices x 48 rows x 40 columns (rows != columns on purpose).
N_SLICES, N_ROWS, N_COLS = 20, 48, 40
ROW_SPACING, COL_SPACING = 0.8, 0.7  # PixelSpacing = [row spacing (between rows), column spacing]
SLICE_SPACING = 2.5
ANGLE_A, ANGLE_B = math.radians(20.0), math.radians(20.0)
ORIGIN_LPS = np.array([-14.2, -20.6, -105.0])

# Organ blobs in local millimetres (u along a row = column index * 0.7, v down the columns =
# row index * 0.8, w along the normal = slice index * 2.5): centre, semi-axes, HU, label.
# Painted in this order (later ones overwrite earlier ones).
ORGANS = [
    ("liver", (8.0, 14.0, 22.0), (5.0, 7.0, 12.0), 60),
    ("gallbladder", (10.0, 6.0, 10.0), (2.2, 2.0, 4.0), 10),
    ("spleen", (21.0, 21.0, 28.0), (3.0, 4.0, 7.0), 50),
    ("kidney_l", (20.0, 28.0, 20.0), (2.5, 3.5, 6.0), 150),
    ("kidney_r", (7.0, 28.0, 17.0), (2.5, 3.5, 6.0), 150),
    ("aorta", (14.0, 25.0, 24.0), (1.6, 1.6, 22.0), 200),
    ("stomach", (19.0, 11.0, 33.0), (4.0, 4.0, 6.0), 20),
    ("pancreas", (14.5, 19.0, 17.0), (5.0, 1.8, 3.5), 45),
]

STUDY_DATE, STUDY_TIME = "20240115", "101500"


class CheckFailed(Exception):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


# --------------------------------------------------------------------------------------------
# geometry


def geometry() -> dict:
    a, b = ANGLE_A, ANGLE_B
    row_dir = np.array([math.cos(a), math.sin(a), 0.0])  # direction of increasing column index
    col_dir = np.array([-math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), math.sin(b)])
    normal = np.cross(row_dir, col_dir)
    assert abs(row_dir @ col_dir) < 1e-12 and abs(np.linalg.norm(col_dir) - 1) < 1e-12
    return {"row_dir": row_dir, "col_dir": col_dir, "normal": normal, "origin": ORIGIN_LPS}


def fmt_ds(v: float) -> str:
    """A DS string (at most 16 characters) for v."""
    s = f"{v:.10g}"
    if len(s) > 16:
        s = f"{v:.8g}"
    return s


def dicom_affine_lps(g: dict) -> np.ndarray:
    """voxel (column, row, slice) -> LPS mm for the CT series."""
    A = np.eye(4)
    A[:3, 0] = g["row_dir"] * COL_SPACING
    A[:3, 1] = g["col_dir"] * ROW_SPACING
    A[:3, 2] = g["normal"] * SLICE_SPACING
    A[:3, 3] = g["origin"]
    return A


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nifti_affine_ras(g: dict) -> np.ndarray:
    """NIfTI voxel (i, j, k) with i = reversed row index, j = column index, k = slice index."""
    A = np.eye(4)
    A[:3, 0] = -g["col_dir"] * ROW_SPACING
    A[:3, 1] = g["row_dir"] * COL_SPACING
    A[:3, 2] = g["normal"] * SLICE_SPACING
    A[:3, 3] = g["origin"] + (N_ROWS - 1) * ROW_SPACING * g["col_dir"]
    return LPS_TO_RAS @ A


def to_nifti_order(vol_krc: np.ndarray) -> np.ndarray:
    """[slice, row, column] -> NIfTI [i = N_ROWS-1-row, j = column, k = slice]."""
    return np.ascontiguousarray(vol_krc.transpose(1, 2, 0)[::-1, :, :])


# --------------------------------------------------------------------------------------------
# phantom


def make_phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k, r, c = np.meshgrid(np.arange(N_SLICES), np.arange(N_ROWS), np.arange(N_COLS), indexing="ij")
    u, v, w = c * COL_SPACING, r * ROW_SPACING, k * SLICE_SPACING
    uc, vc = (N_COLS - 1) * COL_SPACING / 2, (N_ROWS - 1) * ROW_SPACING / 2
    body = ((u - uc) / 12.8) ** 2 + ((v - vc) / 17.5) ** 2 <= 1.0
    hu = np.full(body.shape, -1000.0)
    labels = np.zeros(body.shape, np.uint8)
    hu[body] = 40.0
    for name, (cu, cv, cw), (au, av, aw), value in ORGANS:
        m = body & ((((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 + ((w - cw) / aw) ** 2) <= 1.0)
        hu[m] = value
        labels[m] = CLASS_NAMES.index(name)
    noise = rng.normal(0.0, 8.0, size=hu.shape)
    hu = np.where(body, hu + noise, hu)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    for i, name in enumerate(CLASS_NAMES[1:], start=1):
        check(int((labels == i).sum()) >= 20, f"phantom: organ {name} has too few voxels")
    return hu, labels


# --------------------------------------------------------------------------------------------
# DICOM writing


class Uids:
    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, *parts) -> str:
        # 2.25.<UUID as an integer>, the UUID derived from a hash of the seed and the parts
        # (pydicom's generate_uid ignores entropy_srcs when prefix is None).
        key = "/".join([f"vmunet-clinical-fixture-{self.seed}"] + [str(p) for p in parts])
        digest = hashlib.sha256(key.encode()).digest()[:16]
        return f"2.25.{uuid.UUID(bytes=digest, version=4).int}"


def file_meta(sop_class: str, sop_instance: str, ts: str) -> FileMetaDataset:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop_instance
    fm.TransferSyntaxUID = ts
    fm.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "VMUNET_FIXTURE"
    return fm


def write_ds(path: Path, ds: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def patient_study(ds: Dataset, ctx: dict) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Phantom^Vmunet"
    ds.PatientID = "VMUNET-PHANTOM-001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = ctx["study_uid"]
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = STUDY_TIME
    ds.StudyID = "1"
    ds.AccessionNumber = "VMU0001"
    ds.ReferringPhysicianName = "Referrer^Test"
    ds.StudyDescription = "Abdomen phantom"


def equipment(ds: Dataset) -> None:
    ds.Manufacturer = "vmunet test fixtures"
    ds.ManufacturerModelName = "make_fixtures.py"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = "1"
    ds.InstitutionName = "Test Institution"


def ct_slice(ctx: dict, g: dict, hu_slice: np.ndarray, k: int, *, series_uid: str, sop_uid: str,
             series_number: int, series_desc: str, instance_number: int, implicit: bool,
             signed: bool) -> Dataset:
    ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = file_meta(CT_IMAGE_STORAGE, sop_uid, ts)
    patient_study(ds, ctx)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = STUDY_DATE
    ds.InstanceCreationTime = STUDY_TIME
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_desc
    ds.SeriesDate = STUDY_DATE
    ds.SeriesTime = STUDY_TIME
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = ctx["for_uid"]
    ds.PositionReferenceIndicator = ""
    equipment(ds)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = STUDY_TIME
    ds.AcquisitionDate = STUDY_DATE
    ds.AcquisitionTime = STUDY_TIME
    ds.BurnedInAnnotation = "NO"
    ds.KVP = "120"
    ds.PixelSpacing = [fmt_ds(ROW_SPACING), fmt_ds(COL_SPACING)]
    ds.ImageOrientationPatient = [fmt_ds(x) for x in np.concatenate([g["row_dir"], g["col_dir"]])]
    ipp = g["origin"] + k * SLICE_SPACING * g["normal"]
    ds.ImagePositionPatient = [fmt_ds(x) for x in ipp]
    ds.SliceThickness = fmt_ds(SLICE_SPACING)
    ds.SliceLocation = fmt_ds(float(ipp @ g["normal"]))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu_slice.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    if signed:
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        stored = hu_slice.astype("<i2")
    else:
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        stored = (hu_slice.astype(np.int32) + 1024).astype("<u2")
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.WindowCenterWidthExplanation = "ABDOMEN"
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def write_ct_series(out: Path, ctx: dict, g: dict, hu: np.ndarray, rng: np.random.Generator, *,
                    series_uid: str, sop_uids: list[str], series_number: int, series_desc: str,
                    implicit: bool, signed: bool) -> list[str]:
    """Writes one file per slice, shuffled hex names. Returns the file names in spatial order."""
    n = hu.shape[0]
    inst = rng.permutation(n) + 1
    # never accidentally spatial / reversed-spatial
    while np.all(np.diff(inst) == 1) or np.all(np.diff(inst) == -1):
        inst = rng.permutation(n) + 1
    names = []
    used = set()
    while len(names) < n:
        name = rng.bytes(8).hex()
        if name not in used:
            used.add(name)
            names.append(name)
    check(sorted(names) != names, "file names happen to be sorted spatially")
    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        ds = ct_slice(ctx, g, hu[k], k, series_uid=series_uid, sop_uid=sop_uids[k],
                      series_number=series_number, series_desc=series_desc,
                      instance_number=int(inst[k]), implicit=implicit, signed=signed)
        write_ds(out / names[k], ds)
    return names


def scout_series(out: Path, ctx: dict, uids: Uids) -> list[str]:
    series_uid = uids("scout-series")
    names = []
    for k in range(3):
        sop = uids("scout", k)
        ds = Dataset()
        ds.file_meta = file_meta(CT_IMAGE_STORAGE, sop, ExplicitVRLittleEndian)
        patient_study(ds, ctx)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 100
        ds.SeriesDescription = "scout"
        ds.BodyPartExamined = "ABDOMEN"
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = ctx["for_uid"]
        ds.PositionReferenceIndicator = ""
        equipment(ds)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.ContentDate = STUDY_DATE
        ds.ContentTime = STUDY_TIME
        ds.KVP = "120"
        ds.PixelSpacing = ["1.5", "1.5"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.ImagePositionPatient = ["-24", "-24", fmt_ds(-90.0 + 10.0 * k)]
        ds.SliceThickness = "10"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = 32
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        yy, xx = np.mgrid[:32, :32]
        img = np.where((xx - 16) ** 2 + (yy - 16) ** 2 < 14 ** 2, 40 + 10 * k, -1000).astype("<i2")
        ds.PixelData = img.tobytes()
        ds["PixelData"].VR = "OW"
        name = f"scout{k}"
        write_ds(out / name, ds)
        names.append(name)
    return names


def enhanced_ct(path: Path, ctx: dict, g: dict, hu: np.ndarray, uids: Uids,
                rng: np.random.Generator) -> dict:
    sop = uids("enhanced-ct")
    series_uid = uids("enhanced-ct-series")
    n = hu.shape[0]
    order = rng.permutation(n)  # frame f holds spatial slice order[f]
    while np.all(np.diff(order) == 1):
        order = rng.permutation(n)
    ds = Dataset()
    ds.file_meta = file_meta(ENHANCED_CT_STORAGE, sop, ExplicitVRLittleEndian)
    patient_study(ds, ctx)
    ds.SOPClassUID = ENHANCED_CT_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 4
    ds.SeriesDescription = "phantom enhanced"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = ctx["for_uid"]
    ds.PositionReferenceIndicator = ""
    equipment(ds)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber = 1
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = STUDY_TIME
    ds.AcquisitionDateTime = STUDY_DATE + STUDY_TIME
    ds.AcquisitionNumber = 1
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "frames are deliberately not in spatial order"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = N_ROWS, N_COLS
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = n

    dim_org = uids("enhanced-ct-dimension-organization")
    org = Dataset()
    org.DimensionOrganizationUID = dim_org
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionOrganizationType = "3D"
    idx = Dataset()
    idx.DimensionOrganizationUID = dim_org
    idx.DimensionIndexPointer = pydicom.tag.Tag("ImagePositionPatient")
    idx.FunctionalGroupPointer = pydicom.tag.Tag("PlanePositionSequence")
    idx.DimensionDescriptionLabel = "Image Position"
    ds.DimensionIndexSequence = Sequence([idx])

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [fmt_ds(ROW_SPACING), fmt_ds(COL_SPACING)]
    pm.SliceThickness = fmt_ds(SLICE_SPACING)
    pm.SpacingBetweenSlices = fmt_ds(SLICE_SPACING)
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [fmt_ds(x) for x in np.concatenate([g["row_dir"], g["col_dir"]])]
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept = "-1024"
    pvt.RescaleSlope = "1"
    pvt.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ft.PixelPresentation = "MONOCHROME"
    ft.VolumetricProperties = "VOLUME"
    ft.VolumeBasedCalculationTechnique = "NONE"
    shared.CTImageFrameTypeSequence = Sequence([ft])
    voi = Dataset()
    voi.WindowCenter = "40"
    voi.WindowWidth = "400"
    shared.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    per = []
    for f in range(n):
        k = int(order[f])
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [fmt_ds(x) for x in g["origin"] + k * SLICE_SPACING * g["normal"]]
        item.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.DimensionIndexValues = [k + 1]
        fc.FrameAcquisitionNumber = 1
        item.FrameContentSequence = Sequence([fc])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    stored = (hu[order].astype(np.int32) + 1024).astype("<u2")
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    write_ds(path, ds)
    return {"sop_instance_uid": sop, "series_instance_uid": series_uid,
            "frame_spatial_index": [int(x) for x in order]}


def jpeg_info(data: bytes) -> dict:
    """Parses the JPEG markers up to SOS: returns the SOF type and the component sampling."""
    check(data[:2] == b"\xff\xd8", "photo: not a JPEG (no SOI)")
    i = 2
    while i + 4 <= len(data):
        check(data[i] == 0xFF, "photo: bad JPEG marker stream")
        m = data[i + 1]
        if m == 0xFF:
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            seg = data[i + 4:i + 2 + length]
            ncomp = seg[5]
            comps = [(seg[6 + 3 * c], seg[7 + 3 * c] >> 4, seg[7 + 3 * c] & 15) for c in range(ncomp)]
            return {"sof": m, "precision": seg[0], "rows": int.from_bytes(seg[1:3], "big"),
                    "columns": int.from_bytes(seg[3:5], "big"), "components": comps}
        if m == 0xDA:
            break
        i += 2 + length
    raise CheckFailed("photo: no SOF marker")


def default_photo() -> str | None:
    here = Path(__file__).resolve()
    roots = []
    env = os.environ.get("VMUNET_SHARED")
    if env:
        roots.append(Path(env) / "data")
    roots += [Path("/work/shared/data"), here.parents[3] / "shared" / "data" if len(here.parents) > 3
              else Path("/nonexistent")]
    for root in roots:
        for sub in ("isic2017-fullres", "isic2017"):
            hits = sorted(glob.glob(str(root / sub / "**" / "*.jpg"), recursive=True))
            if hits:
                return hits[0]
    return None


def photo(out: Path, ctx: dict, uids: Uids, photo_path: str | None, rng: np.random.Generator) -> dict:
    source = "synthesised"
    data = None
    if photo_path:
        data = Path(photo_path).read_bytes()
        source = photo_path
    reencoded = False
    if data is not None:
        info = jpeg_info(data)
        im = Image.open(io.BytesIO(data))
        if (info["sof"] != 0xC0 or len(info["components"]) != 3 or info["precision"] != 8
                or max(im.size) > 1024):
            im = im.convert("RGB")
            if max(im.size) > 1024:
                s = 1024 / max(im.size)
                im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))),
                               Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=90, subsampling=1, progressive=False, optimize=False)
            data = buf.getvalue()
            reencoded = True
    else:
        yy, xx = np.mgrid[:192, :256]
        img = np.stack([180 + 40 * np.sin(xx / 17.0), 120 + 30 * np.cos(yy / 13.0),
                        100 + 0 * xx], -1)
        lesion = ((xx - 130) / 60.0) ** 2 + ((yy - 95) / 45.0) ** 2 < 1
        img[lesion] = [90, 50, 40]
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, "JPEG", quality=90, subsampling=1)
        data = buf.getvalue()
        reencoded = True
    info = jpeg_info(data)
    check(info["sof"] == 0xC0, "photo: JPEG is not baseline")
    (out / "photo.jpg").write_bytes(data)

    sop = uids("photo")
    ds = Dataset()
    ds.file_meta = file_meta(VL_PHOTO_STORAGE, sop, JPEGBaseline8Bit)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Phantom^Vmunet"
    ds.PatientID = "VMUNET-PHANTOM-001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uids("photo-study")
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = "113000"
    ds.StudyID = "2"
    ds.AccessionNumber = "VMU0002"
    ds.ReferringPhysicianName = "Referrer^Test"
    ds.StudyDescription = "Dermoscopy"
    ds.SOPClassUID = VL_PHOTO_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "XC"
    ds.SeriesInstanceUID = uids("photo-series")
    ds.SeriesNumber = 1
    ds.SeriesDescription = "dermoscopy"
    ds.BodyPartExamined = "SKIN"
    ds.Laterality = ""
    equipment(ds)
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = "113000"
    ds.AcquisitionDateTime = STUDY_DATE + "113000"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.AcquisitionContextSequence = Sequence([])
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = info["rows"]
    ds.Columns = info["columns"]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompressionRatio = fmt_ds(round(info["rows"] * info["columns"] * 3 / len(data), 2))
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    write_ds(out / "photo.dcm", ds)
    return {"sop_instance_uid": sop, "source": source, "reencoded": reencoded,
            "rows": info["rows"], "columns": info["columns"],
            "jpeg_sampling": [list(c) for c in info["components"]],
            "jpeg_sha256": hashlib.sha256(data).hexdigest()}


def non_image_sr(path: Path, ctx: dict, uids: Uids) -> None:
    sop = uids("sr")
    ds = Dataset()
    ds.file_meta = file_meta(BASIC_TEXT_SR, sop, ExplicitVRLittleEndian)
    patient_study(ds, ctx)
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop
    ds.Modality = "SR"
    ds.SeriesInstanceUID = uids("sr-series")
    ds.SeriesNumber = 900
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    equipment(ds)
    ds.InstanceNumber = 1
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = STUDY_TIME
    ds.ValueType = "CONTAINER"
    cn = Dataset()
    cn.CodeValue = "18748-4"
    cn.CodingSchemeDesignator = "LN"
    cn.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = Sequence([cn])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = Sequence([])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    icn = Dataset()
    icn.CodeValue = "121071"
    icn.CodingSchemeDesignator = "DCM"
    icn.CodeMeaning = "Finding"
    item.ConceptNameCodeSequence = Sequence([icn])
    item.TextValue = "Not an image: a reader must skip or reject this instance."
    ds.ContentSequence = Sequence([item])
    write_ds(path, ds)


def bad_inputs(out: Path, ct_dir: Path, names: list[str], ctx: dict, g: dict, hu: np.ndarray,
               uids: Uids, rng: np.random.Generator) -> dict:
    bad = out / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    mid = len(names) // 2
    # missing-slice: the ct series without one middle slice
    d = bad / "missing-slice"
    d.mkdir()
    for i, n in enumerate(names):
        if i != mid:
            shutil.copyfile(ct_dir / n, d / n)
    # mixed-orientation: one slice with a different ImageOrientationPatient
    d = bad / "mixed-orientation"
    d.mkdir()
    for n in names:
        shutil.copyfile(ct_dir / n, d / n)
    odd = names[7]
    ds = pydicom.dcmread(d / odd)
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    write_ds(d / odd, ds)
    # non-image instance
    non_image_sr(bad / "non-image.dcm", ctx, uids)
    # truncated: cut in the middle of the pixel data
    raw = (ct_dir / names[mid]).read_bytes()
    pixel_bytes = N_ROWS * N_COLS * 2
    check(raw[-pixel_bytes - 4:-pixel_bytes] == (pixel_bytes).to_bytes(4, "little"),
          "truncated: pixel data is not the last element")
    (bad / "truncated.dcm").write_bytes(raw[: len(raw) - pixel_bytes // 2])
    # wrong transfer syntax: JPEG 2000 Lossless with garbage fragments
    ds = ct_slice(ctx, g, hu[mid], mid, series_uid=uids("wrong-ts-series"), sop_uid=uids("wrong-ts"),
                  series_number=901, series_desc="wrong transfer syntax", instance_number=1,
                  implicit=False, signed=False)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    garbage = rng.bytes(1000)
    ds.PixelData = encapsulate([garbage])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.LossyImageCompression = "00"
    write_ds(bad / "wrong-ts.dcm", ds)
    # not DICOM at all
    junk = bytearray(rng.bytes(4096))
    junk[128:132] = b"JUNK"
    (bad / "not-dicom.dcm").write_bytes(bytes(junk))
    return {"missing_slice_spatial_index": mid, "mixed_orientation_file": odd,
            "truncated_from": names[mid]}


# --------------------------------------------------------------------------------------------
# read-back checks (independent of the writer code above: geometry comes from the files)


def read_series_hu(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Returns (HU [slice,row,col] in spatial order, LPS affine (col,row,slice), SOP UIDs)."""
    dss = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    for ds in dss:
        check(np.allclose(np.array(ds.ImageOrientationPatient, float), iop, atol=1e-6),
              f"{folder}: mixed orientation")
    rdir, cdir = iop[:3], iop[3:]
    nrm = np.cross(rdir, cdir)
    dss.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, float) @ nrm))
    pos = np.array([np.array(ds.ImagePositionPatient, float) for ds in dss])
    steps = np.diff(pos @ nrm)
    check(np.allclose(steps, steps[0], atol=1e-3), f"{folder}: irregular slice spacing")
    ps = np.array(dss[0].PixelSpacing, float)
    A = np.eye(4)
    A[:3, 0] = rdir * ps[1]
    A[:3, 1] = cdir * ps[0]
    A[:3, 2] = (pos[-1] - pos[0]) / (len(pos) - 1)
    A[:3, 3] = pos[0]
    vol = np.stack([ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope)
                    + float(ds.RescaleIntercept) for ds in dss])
    return vol, A, [str(ds.SOPInstanceUID) for ds in dss]


def read_enhanced_hu(path: Path) -> tuple[np.ndarray, np.ndarray]:
    ds = pydicom.dcmread(path)
    sh = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
    pvt = sh.PixelValueTransformationSequence[0]
    nrm = np.cross(iop[:3], iop[3:])
    pos = np.array([np.array(f.PlanePositionSequence[0].ImagePositionPatient, float)
                    for f in ds.PerFrameFunctionalGroupsSequence])
    order = np.argsort(pos @ nrm)
    frames = ds.pixel_array.astype(np.float64) * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
    A = np.eye(4)
    A[:3, 0] = iop[:3] * ps[1]
    A[:3, 1] = iop[3:] * ps[0]
    A[:3, 2] = (pos[order[-1]] - pos[order[0]]) / (len(order) - 1)
    A[:3, 3] = pos[order[0]]
    return frames[order], A


def nifti_vs_dicom(nii_path: Path, vol_dcm: np.ndarray, A_lps: np.ndarray, what: str) -> None:
    """Each NIfTI voxel's world position maps (through both affines) onto a DICOM voxel with the
    same value."""
    img = nib.load(str(nii_path))
    data = np.asanyarray(img.dataobj)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in data.shape], indexing="ij"), 0).reshape(3, -1)
    world_ras = img.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    crs = np.linalg.inv(A_lps) @ (LPS_TO_RAS @ world_ras)
    idx = np.rint(crs[:3]).astype(int)
    check(np.abs(crs[:3] - idx).max() < 1e-3, f"{what}: NIfTI voxels do not fall on DICOM voxels")
    c, r, s = idx
    check(c.min() >= 0 and r.min() >= 0 and s.min() >= 0 and c.max() < vol_dcm.shape[2]
          and r.max() < vol_dcm.shape[1] and s.max() < vol_dcm.shape[0],
          f"{what}: NIfTI grid leaves the DICOM grid")
    check(data.size == vol_dcm.size, f"{what}: size differs")
    check(np.array_equal(data.reshape(-1), vol_dcm[s, r, c]), f"{what}: values differ at the same world position")


def verify(out: Path, hu: np.ndarray, labels: np.ndarray, manifest: dict) -> list[str]:
    done = []
    for p in sorted(out.rglob("*")):
        if p.is_file() and "bad" not in p.relative_to(out).parts and p.suffix not in (".json", ".gz", ".jpg"):
            pydicom.dcmread(p)
    done.append("pydicom reads every good file")

    vol_ct, A_ct, sops_ct = read_series_hu(out / "ct")
    check(np.array_equal(vol_ct, hu.astype(np.float64)), "ct/: HU volume differs from the phantom")
    check(sops_ct == manifest["series"]["ct"]["sop_instance_uids"], "ct/: spatial SOP order differs")
    vol_im, A_im, sops_im = read_series_hu(out / "ct-implicit")
    check(np.array_equal(vol_im, vol_ct), "ct-implicit/: HU volume differs from ct/")
    check(np.allclose(A_im, A_ct, atol=1e-4), "ct-implicit/: geometry differs from ct/")
    check(set(sops_im).isdisjoint(sops_ct), "ct-implicit/: SOP instance UIDs reused")
    for p in (out / "ct-implicit").iterdir():
        ds = pydicom.dcmread(p)
        check(ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian and ds.PixelRepresentation == 1,
              "ct-implicit/: wrong transfer syntax or pixel representation")
    vol_en, A_en = read_enhanced_hu(out / "enhanced-ct.dcm")
    check(np.array_equal(vol_en, vol_ct), "enhanced-ct.dcm: HU volume differs from ct/")
    check(np.allclose(A_en, A_ct, atol=1e-4), "enhanced-ct.dcm: geometry differs from ct/")
    check(np.allclose(A_ct, np.array(manifest["dicom_affine_lps"]), atol=1e-4),
          "ct/: geometry read back differs from the manifest")
    done.append("ct/, ct-implicit/, enhanced-ct.dcm give the same HU volume in spatial order")

    nifti_vs_dicom(out / "ct.nii.gz", vol_ct, A_ct, "ct.nii.gz")
    nifti_vs_dicom(out / "ct_labels.nii.gz", labels, A_ct, "ct_labels.nii.gz")
    img = nib.load(str(out / "ct.nii.gz"))
    check(img.get_data_dtype() == np.int16, "ct.nii.gz: not int16")
    check(tuple(img.shape) != (N_COLS, N_ROWS, N_SLICES), "ct.nii.gz: stored in the DICOM axis order")
    lab = nib.load(str(out / "ct_labels.nii.gz"))
    check(lab.get_data_dtype() == np.uint8, "ct_labels.nii.gz: not uint8")
    check(np.allclose(lab.affine, img.affine), "ct_labels.nii.gz: affine differs from ct.nii.gz")
    # a reader that ignores the affine gets it wrong
    naive = np.asanyarray(img.dataobj).transpose(2, 1, 0)
    check(naive.shape != vol_ct.shape or not np.array_equal(naive, vol_ct),
          "ct.nii.gz: naive axis order would be right")
    done.append("ct.nii.gz and ct_labels.nii.gz match the DICOM series voxel by voxel in world space")

    # two-series
    by_series = {}
    for p in (out / "two-series").iterdir():
        ds = pydicom.dcmread(p)
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    check(len(by_series) == 2, "two-series/: expected two series")
    check({len(v) for v in by_series.values()} == {N_SLICES, 3}, "two-series/: sizes")
    check(len({str(d.StudyInstanceUID) for v in by_series.values() for d in v}) == 1,
          "two-series/: not one study")
    done.append("two-series/ holds the main series and a 3-slice scout of the same study")

    # photo
    ds = pydicom.dcmread(out / "photo.dcm")
    check(ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit, "photo.dcm: transfer syntax")
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    jpeg = (out / "photo.jpg").read_bytes()
    check(frames[0].rstrip(b"\x00") == jpeg.rstrip(b"\x00"), "photo.dcm: encapsulated bytes differ from photo.jpg")
    if not manifest["photo"]["reencoded"]:
        src = Path(manifest["photo"]["source"]).read_bytes()
        check(src == jpeg, "photo.jpg: not the unchanged source bytes")
    arr = ds.pixel_array
    ref = np.asarray(Image.open(out / "photo.jpg").convert("RGB"))
    check(arr.shape == ref.shape, f"photo.dcm: decoded shape {arr.shape} != {ref.shape}")
    diff = int(np.abs(arr.astype(int) - ref.astype(int)).max())
    check(diff <= 2, f"photo.dcm: pydicom-decoded pixels differ from Pillow's by {diff}")
    done.append(f"photo.dcm decodes (pydicom) to the JPEG's RGB pixels (max diff {diff})")

    # bad inputs really are bad
    bad = out / "bad"
    check(len(list((bad / "missing-slice").iterdir())) == N_SLICES - 1, "bad/missing-slice: count")
    try:
        read_series_hu(bad / "missing-slice")
        raise CheckFailed("bad/missing-slice reads as a regular series")
    except CheckFailed as e:
        check("irregular" in str(e), str(e))
    try:
        read_series_hu(bad / "mixed-orientation")
        raise CheckFailed("bad/mixed-orientation reads as a regular series")
    except CheckFailed as e:
        check("mixed orientation" in str(e), str(e))
    sr = pydicom.dcmread(bad / "non-image.dcm")
    check("PixelData" not in sr and sr.SOPClassUID == BASIC_TEXT_SR, "bad/non-image.dcm")
    failed = False
    try:
        ds = pydicom.dcmread(bad / "truncated.dcm")
        ds.pixel_array
    except Exception:
        failed = True
    check(failed, "bad/truncated.dcm decodes")
    failed = False
    try:
        ds = pydicom.dcmread(bad / "wrong-ts.dcm")
        check(ds.file_meta.TransferSyntaxUID == JPEG2000Lossless, "bad/wrong-ts.dcm: transfer syntax")
        ds.pixel_array
    except CheckFailed:
        raise
    except Exception:
        failed = True
    check(failed, "bad/wrong-ts.dcm decodes")
    try:
        pydicom.dcmread(bad / "not-dicom.dcm")
        raise CheckFailed("bad/not-dicom.dcm reads as DICOM")
    except pydicom.errors.InvalidDicomError:
        pass
    done.append("bad/ inputs fail as intended (gap, mixed orientation, no pixels, truncated, "
                "undecodable transfer syntax, not DICOM)")
    return done


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--photo", help="JPEG photo to wrap in photo.dcm (default: the first ISIC image in "
                    "the shared data; 'synth' for a synthesised one)")
    ap.add_argument("--seed", type=int, default=20240115)
    args = ap.parse_args()

    out = Path(args.out_dir)
    if out.exists():
        for name in ("ct", "ct-implicit", "two-series", "bad"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    uids = Uids(args.seed)
    g = geometry()
    hu, labels = make_phantom(rng)
    ctx = {"study_uid": uids("study"), "for_uid": uids("frame-of-reference")}

    ct_series = uids("ct-series")
    ct_sops = [uids("ct", k) for k in range(N_SLICES)]
    ct_names = write_ct_series(out / "ct", ctx, g, hu, rng, series_uid=ct_series, sop_uids=ct_sops,
                               series_number=2, series_desc="phantom abdomen", implicit=False,
                               signed=False)
    im_series = uids("ct-implicit-series")
    im_sops = [uids("ct-implicit", k) for k in range(N_SLICES)]
    im_names = write_ct_series(out / "ct-implicit", ctx, g, hu, rng, series_uid=im_series,
                               sop_uids=im_sops, series_number=3,
                               series_desc="phantom abdomen implicit", implicit=True, signed=True)

    A_nii = nifti_affine_ras(g)
    for name, arr, dtype in (("ct.nii.gz", hu, np.int16), ("ct_labels.nii.gz", labels, np.uint8)):
        img = nib.Nifti1Image(to_nifti_order(arr).astype(dtype), A_nii)
        img.set_qform(A_nii, code=1)
        img.set_sform(A_nii, code=1)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_data_dtype(dtype)
        nib.save(img, str(out / name))

    (out / "two-series").mkdir()
    for n in ct_names:
        shutil.copyfile(out / "ct" / n, out / "two-series" / n)
    scout_names = scout_series(out / "two-series", ctx, uids)

    photo_path = None if args.photo == "synth" else (args.photo or default_photo())
    photo_info = photo(out, ctx, uids, photo_path, rng)
    enh = enhanced_ct(out / "enhanced-ct.dcm", ctx, g, hu, uids, rng)
    bad = bad_inputs(out, out / "ct", ct_names, ctx, g, hu, uids, rng)

    A_dcm = dicom_affine_lps(g)
    manifest = {
        "seed": args.seed,
        "class_names": CLASS_NAMES,
        "patient_id": "VMUNET-PHANTOM-001",
        "study_instance_uid": ctx["study_uid"],
        "frame_of_reference_uid": ctx["for_uid"],
        "series": {
            "ct": {"series_instance_uid": ct_series, "sop_instance_uids": ct_sops,
                   "file_names": ct_names, "transfer_syntax": ExplicitVRLittleEndian,
                   "pixel_representation": 0, "rescale_intercept": -1024},
            "ct-implicit": {"series_instance_uid": im_series, "sop_instance_uids": im_sops,
                            "file_names": im_names, "transfer_syntax": ImplicitVRLittleEndian,
                            "pixel_representation": 1, "rescale_intercept": 0},
            "scout": {"series_instance_uid": str(pydicom.dcmread(out / "two-series" / scout_names[0]).SeriesInstanceUID),
                      "file_names": scout_names, "series_description": "scout"},
            "enhanced-ct": enh,
        },
        "dicom_geometry": {
            "origin_lps": g["origin"].tolist(),
            "row_direction": g["row_dir"].tolist(),
            "column_direction": g["col_dir"].tolist(),
            "normal": g["normal"].tolist(),
            "pixel_spacing": [ROW_SPACING, COL_SPACING],
            "slice_spacing": SLICE_SPACING,
            "rows": N_ROWS, "columns": N_COLS, "slices": N_SLICES,
        },
        "dicom_affine_lps": A_dcm.tolist(),
        "dicom_affine_ras": (LPS_TO_RAS @ A_dcm).tolist(),
        "dicom_nifti_shape": [N_COLS, N_ROWS, N_SLICES],
        "nifti_affine": A_nii.tolist(),
        "nifti_shape": list(to_nifti_order(hu).shape),
        "nifti_axes": "i = rows reversed (N_ROWS-1-row), j = columns, k = slices",
        "label_voxels": {CLASS_NAMES[i]: int((labels == i).sum()) for i in range(len(CLASS_NAMES))},
        "photo": photo_info,
        "bad": bad,
    }
    (out / "fixtures.json").write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        done = verify(out, hu, labels, manifest)
    except CheckFailed as e:
        print(f"make_fixtures: CHECK FAILED: {e}", file=sys.stderr)
        return 1
    for d in done:
        print(f"ok: {d}")
    print(f"make_fixtures: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
