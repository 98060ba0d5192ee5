#!/usr/bin/env python3
"""Independent check of one vmunet clinical output, with third-party readers.

    check_outputs.py --source SOURCE --out-dir OUT --name NAME [--labels GT.nii.gz]
                     [--expect-classes background,aorta,...] [--seg-type binary|labelmap]
                     [--series-uid UID] [--require-seg] [--no-dciodvfy]

SOURCE is a DICOM series folder, a DICOM file (single frame or Enhanced multi-frame) or a NIfTI
volume. Checks OUT/NAME.nii.gz (nibabel: integer labels, affine and grid equal the source's),
OUT/NAME.seg.dcm when present (highdicom + pydicom: SOP class, type, UIDs, references, segment
descriptions and codes, pixels rebuilt frame by frame and compared voxel by voxel, in world space,
with the NIfTI labels; dciodvfy on a binary SEG) and OUT/NAME.json when present (valid JSON).
With --labels, prints the per-class Dice against the ground truth (information only).

Prints a JSON summary on stdout; exits 1 with the failures on stderr when any check fails.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

try:
    import highdicom as hd
    import nibabel as nib
    import pydicom
except ImportError as e:  # pragma: no cover
    sys.exit(f"check_outputs: missing Python package ({e}); pip install -r tests/clinical/requirements.txt")

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
AFFINE_TOL = 1e-3
GRID_TOL = 1e-2  # voxels

# Expected SNOMED CT codes per known class name: type code (or type code + laterality modifier)
# and the accepted category codes.
ANATOMY = {"123037004", "91723000"}  # Anatomical Structure (current and retired code)
EXPECTED_CODES = {
    "aorta": ([("15825003", None)], ANATOMY),
    "gallbladder": ([("28231008", None)], ANATOMY),
    "kidney_l": ([("18639004", None), ("64033007", "7771000")], ANATOMY),
    "kidney_r": ([("9846003", None), ("64033007", "24028007")], ANATOMY),
    "liver": ([("10200004", None)], ANATOMY),
    "pancreas": ([("15776009", None)], ANATOMY),
    "spleen": ([("78961009", None)], ANATOMY),
    "stomach": ([("69695003", None)], ANATOMY),
    "lesion": ([("52988006", None)], {"49755003"}),  # Lesion / Morphologically abnormal structure
}


class Fatal(Exception):
    pass


class Report:
    def __init__(self):
        self.passed: list[str] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.info: dict = {}

    def ok(self, msg):
        self.passed.append(msg)

    def fail(self, msg):
        self.errors.append(msg)

    def expect(self, cond, ok_msg, fail_msg):
        if cond:
            self.ok(ok_msg)
        else:
            self.fail(fail_msg)
        return bool(cond)

    def note(self, msg):
        self.notes.append(msg)


# --------------------------------------------------------------------------------------------
# the source grid


class Source:
    """The source grid: voxel (column, row, slice) -> RAS affine, and its instances."""

    def __init__(self):
        self.kind = ""
        self.affine: np.ndarray | None = None  # RAS
        self.shape: tuple[int, ...] = ()
        self.single_slice = False
        self.study_uid = self.series_uid = self.for_uid = self.sop_class = self.patient_id = None
        self.slice_of_sop: dict[str, int] = {}  # single-frame instances: SOP UID -> slice index
        self.slice_of_frame: dict[tuple[str, int], int] = {}  # multi-frame: (SOP UID, frame no.) -> slice
        self.sops_in_order: list[str] = []
        self.iop: np.ndarray | None = None
        self.pixel_spacing: np.ndarray | None = None


def _read_header(p: Path):
    try:
        return pydicom.dcmread(p, stop_before_pixels=True)
    except Exception:
        return None


def _geometry(iops, positions, pixel_spacing, what, thickness=None):
    iop = np.array(iops[0], float)
    for o in iops:
        if not np.allclose(np.array(o, float), iop, atol=1e-4):
            raise Fatal(f"{what}: instances with different ImageOrientationPatient")
    rdir, cdir = iop[:3], iop[3:]
    nrm = np.cross(rdir, cdir)
    pos = np.array(positions, float)
    order = np.argsort(pos @ nrm, kind="stable")
    pos = pos[order]
    A = np.eye(4)
    A[:3, 0] = rdir * float(pixel_spacing[1])
    A[:3, 1] = cdir * float(pixel_spacing[0])
    A[:3, 3] = pos[0]
    if len(pos) > 1:
        steps = np.diff(pos, axis=0)
        step = (pos[-1] - pos[0]) / (len(pos) - 1)
        if np.abs(steps - step).max() > 1e-3 * max(1.0, np.linalg.norm(step)):
            raise Fatal(f"{what}: slice positions are not evenly spaced along a line "
                        f"(steps along the normal: {np.round(steps @ nrm, 4).tolist()})")
        if np.linalg.norm(step) < 1e-6:
            raise Fatal(f"{what}: duplicate slice positions")
        A[:3, 2] = step
    else:
        A[:3, 2] = nrm * float(thickness or 1.0)
    return LPS_TO_RAS @ A, order, iop


def load_source(path: Path, series_uid: str | None, rep: Report) -> Source:
    src = Source()
    name = path.name.lower()
    if path.is_file() and (name.endswith(".nii") or name.endswith(".nii.gz")):
        img = nib.load(str(path))
        src.kind = "nifti"
        src.affine = np.asarray(img.affine, float)
        src.shape = tuple(int(s) for s in img.shape[:3])
        return src
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        by_series: dict[str, list] = {}
        skipped = 0
        for p in files:
            ds = _read_header(p)
            if ds is None or "ImagePositionPatient" not in ds or "SeriesInstanceUID" not in ds:
                skipped += 1
                continue
            by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
        if skipped:
            rep.note(f"source folder: skipped {skipped} file(s) without image geometry")
        if not by_series:
            raise Fatal(f"{path}: no DICOM image series found")
        if series_uid:
            if series_uid not in by_series:
                raise Fatal(f"{path}: series {series_uid} not found (have {sorted(by_series)})")
        else:
            series_uid = max(by_series, key=lambda u: len(by_series[u]))
            if len(by_series) > 1:
                rep.note(f"source folder holds {len(by_series)} series; using {series_uid} "
                         f"({len(by_series[series_uid])} instances)")
        dss = by_series[series_uid]
        src.kind = "dicom-series"
        A, order, iop = _geometry([d.ImageOrientationPatient for d in dss],
                                  [d.ImagePositionPatient for d in dss], dss[0].PixelSpacing,
                                  str(path), getattr(dss[0], "SliceThickness", None))
        dss = [dss[i] for i in order]
        src.affine = A
        src.iop, src.pixel_spacing = iop, np.array(dss[0].PixelSpacing, float)
        src.shape = (int(dss[0].Columns), int(dss[0].Rows), len(dss))
        src.single_slice = len(dss) == 1
        src.sops_in_order = [str(d.SOPInstanceUID) for d in dss]
        src.slice_of_sop = {u: i for i, u in enumerate(src.sops_in_order)}
        first = dss[0]
    else:
        first = pydicom.dcmread(path, stop_before_pixels=True)
        nframes = int(getattr(first, "NumberOfFrames", 1) or 1)
        sop = str(first.SOPInstanceUID)
        src.sops_in_order = [sop]
        if "PerFrameFunctionalGroupsSequence" in first:
            src.kind = "dicom-multiframe"
            sh = first.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in first else None

            def fg(i, seq, attr):
                pf = first.PerFrameFunctionalGroupsSequence[i]
                for grp in (pf, sh):
                    if grp is not None and seq in grp:
                        return getattr(grp[seq].value[0], attr)
                raise Fatal(f"{path}: frame {i + 1} has no {seq}")

            iops = [fg(i, "PlaneOrientationSequence", "ImageOrientationPatient") for i in range(nframes)]
            ipps = [fg(i, "PlanePositionSequence", "ImagePositionPatient") for i in range(nframes)]
            ps = fg(0, "PixelMeasuresSequence", "PixelSpacing")
            A, order, iop = _geometry(iops, ipps, ps, str(path))
            src.shape = (int(first.Columns), int(first.Rows), nframes)
            src.single_slice = nframes == 1
            src.slice_of_frame = {(sop, int(f) + 1): s for s, f in enumerate(order)}
            src.iop, src.pixel_spacing = iop, np.array(ps, float)
            src.affine = A
        elif "ImagePositionPatient" in first:
            src.kind = "dicom-file"
            if nframes != 1:
                raise Fatal(f"{path}: legacy multi-frame without functional groups is not supported")
            A, _, iop = _geometry([first.ImageOrientationPatient], [first.ImagePositionPatient],
                                  first.PixelSpacing, str(path), getattr(first, "SliceThickness", None))
            src.affine = A
            src.iop, src.pixel_spacing = iop, np.array(first.PixelSpacing, float)
            src.shape = (int(first.Columns), int(first.Rows), 1)
            src.single_slice = True
            src.slice_of_sop = {sop: 0}
        else:
            src.kind = "dicom-2d"
            src.shape = (int(first.Columns), int(first.Rows), nframes)
            src.slice_of_sop = {sop: 0} if nframes == 1 else {}
            src.slice_of_frame = {(sop, f + 1): f for f in range(nframes)}
            rep.note(f"{path.name}: no image plane geometry (no ImagePositionPatient); "
                     "the output affine is not compared, only its grid size")
    src.study_uid = str(first.StudyInstanceUID)
    src.patient_id = str(getattr(first, "PatientID", ""))
    src.series_uid = str(first.SeriesInstanceUID)
    src.sop_class = str(first.SOPClassUID)
    src.for_uid = str(first.FrameOfReferenceUID) if "FrameOfReferenceUID" in first else None
    return src


# --------------------------------------------------------------------------------------------
# grid mapping


def map_indices(from_affine, from_shape, to_affine, to_shape, what, exact=True):
    """For each voxel of the `from` grid (C order), the flat index of the voxel of the `to` grid
    at the same world position. Requires integral, in-range positions when exact."""
    ijk = np.indices(from_shape).reshape(3, -1).astype(float)
    M = np.linalg.inv(to_affine) @ from_affine
    pos = M[:3, :3] @ ijk + M[:3, 3:4]
    idx = np.rint(pos).astype(np.int64)
    err = float(np.abs(pos - idx).max()) if pos.size else 0.0
    if exact and err > GRID_TOL:
        raise Fatal(f"{what}: grids do not line up (max {err:.4f} voxel off)")
    inside = np.all((idx >= 0) & (idx < np.array(to_shape)[:, None]), axis=0)
    if exact and not inside.all():
        raise Fatal(f"{what}: {int((~inside).sum())} voxels fall outside the other grid")
    flat = np.ravel_multi_index(np.where(inside, idx, 0), to_shape)
    return flat, inside


# --------------------------------------------------------------------------------------------
# the NIfTI output


def check_nifti(path: Path, src: Source, rep: Report):
    try:
        img = nib.load(str(path))
    except Exception as e:
        raise Fatal(f"{path}: nibabel cannot read it: {e}")
    dtype = img.get_data_dtype()
    rep.info["nifti"] = {"shape": list(img.shape), "dtype": str(dtype),
                         "affine": np.round(img.affine, 6).tolist(),
                         "sform_code": int(img.header["sform_code"]),
                         "qform_code": int(img.header["qform_code"])}
    rep.expect(np.issubdtype(dtype, np.integer), f"NIfTI labels are integers ({dtype})",
               f"{path.name}: label volume has non-integer dtype {dtype}")
    if dtype != np.uint8:
        rep.note(f"{path.name}: dtype {dtype}, expected uint8")
    slope, inter = img.header.get_slope_inter()
    rep.expect(slope in (None, 1.0) and inter in (None, 0.0), "NIfTI has no intensity scaling",
               f"{path.name}: scl_slope/scl_inter {slope}/{inter} scale the labels")
    data = np.asanyarray(img.dataobj)
    if data.ndim != 3:
        raise Fatal(f"{path.name}: expected a 3-D volume, got shape {data.shape}")
    data = data.astype(np.int64)
    rep.info["nifti"]["labels_present"] = sorted(int(v) for v in np.unique(data))
    rep.expect(data.min() >= 0, "NIfTI labels are >= 0", f"{path.name}: negative labels")
    rep.expect(tuple(data.shape) == tuple(src.shape), f"NIfTI shape {tuple(data.shape)} equals the source grid",
               f"{path.name}: shape {tuple(data.shape)} != source grid {tuple(src.shape)}")
    if src.affine is not None:
        diff = np.abs(img.affine - src.affine)
        if src.single_slice:
            cols = [0, 1, 3]
            d = float(diff[:, cols].max())
            c2 = img.affine[:3, 2]
            nrm = src.affine[:3, 2] / np.linalg.norm(src.affine[:3, 2])
            parallel = np.linalg.norm(c2) > 0 and abs(c2 @ nrm / np.linalg.norm(c2) - 1) < 1e-4
            rep.expect(d <= AFFINE_TOL and parallel,
                       f"NIfTI affine equals the source's (single slice: in-plane columns and origin, max diff {d:.2e}; "
                       f"slice column along the normal, length {np.linalg.norm(c2):.4g})",
                       f"{path.name}: affine differs from the source's (max diff {d:.2e}, slice column "
                       f"along the normal: {parallel})\n  got {np.round(img.affine, 4).tolist()}\n"
                       f"  want {np.round(src.affine, 4).tolist()}")
        else:
            d = float(diff.max())
            rep.expect(d <= AFFINE_TOL, f"NIfTI affine equals the source's (max diff {d:.2e})",
                       f"{path.name}: affine differs from the source's by {d:.2e}\n"
                       f"  got  {np.round(img.affine, 4).tolist()}\n  want {np.round(src.affine, 4).tolist()}")
    return img, data


# --------------------------------------------------------------------------------------------
# the SEG output


def _code(item, seq):
    if seq not in item or len(item[seq].value) != 1:
        return None
    c = item[seq].value[0]
    return (str(getattr(c, "CodeValue", "") or getattr(c, "LongCodeValue", "") or ""),
            str(getattr(c, "CodingSchemeDesignator", "")), str(getattr(c, "CodeMeaning", "")))


def check_segments(seg, classes, rep: Report):
    """Checks the segment descriptions; returns the highest segment number."""
    segs = list(seg.SegmentSequence)
    if str(getattr(seg, "SegmentationType", "")) == "LABELMAP" and segs and int(segs[0].SegmentNumber) == 0:
        # a label map may describe its background as segment 0 (DCM 125040 "Background")
        bg = _code(segs[0], "SegmentedPropertyTypeCodeSequence")
        rep.info["seg"]["background_segment"] = {"label": str(getattr(segs[0], "SegmentLabel", "")), "type": bg}
        segs = segs[1:]
    numbers = [int(s.SegmentNumber) for s in segs]
    rep.expect(numbers == list(range(1, len(segs) + 1)),
               f"{len(segs)} segments numbered 1..{len(segs)}",
               f"SEG: segment numbers {numbers} are not 1..{len(segs)} in order")
    labels = [str(getattr(s, "SegmentLabel", "")) for s in segs]
    rep.info["seg"]["segment_labels"] = labels
    problems = []
    for s in segs:
        n, label = int(s.SegmentNumber), str(getattr(s, "SegmentLabel", ""))
        if not label:
            problems.append(f"segment {n}: no SegmentLabel")
        cat, typ = _code(s, "SegmentedPropertyCategoryCodeSequence"), _code(s, "SegmentedPropertyTypeCodeSequence")
        for what, c in (("category", cat), ("type", typ)):
            if c is None:
                problems.append(f"segment {n} ({label}): no single SegmentedProperty{what.title()}CodeSequence item")
            elif c[1] != "SCT" or not c[0] or not c[2]:
                problems.append(f"segment {n} ({label}): {what} code {c} is not a complete SCT code")
        algo_type = str(getattr(s, "SegmentAlgorithmType", ""))
        if algo_type not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
            problems.append(f"segment {n} ({label}): SegmentAlgorithmType {algo_type!r}")
        if algo_type in ("AUTOMATIC", "SEMIAUTOMATIC"):
            if not str(getattr(s, "SegmentAlgorithmName", "")):
                problems.append(f"segment {n} ({label}): no SegmentAlgorithmName")
            if "SegmentationAlgorithmIdentificationSequence" not in s or not len(s.SegmentationAlgorithmIdentificationSequence):
                problems.append(f"segment {n} ({label}): no SegmentationAlgorithmIdentificationSequence")
            else:
                a = s.SegmentationAlgorithmIdentificationSequence[0]
                if not str(getattr(a, "AlgorithmName", "")) or not str(getattr(a, "AlgorithmVersion", "")):
                    problems.append(f"segment {n} ({label}): algorithm identification lacks name or version")
                if "AlgorithmFamilyCodeSequence" not in a or not len(a.AlgorithmFamilyCodeSequence):
                    problems.append(f"segment {n} ({label}): algorithm identification lacks AlgorithmFamilyCodeSequence")
        key = label.lower()
        if key in EXPECTED_CODES and typ is not None and cat is not None:
            types, cats = EXPECTED_CODES[key]
            mod = None
            tseq = s.SegmentedPropertyTypeCodeSequence[0]
            if "SegmentedPropertyTypeModifierCodeSequence" in tseq and len(tseq.SegmentedPropertyTypeModifierCodeSequence):
                mod = str(tseq.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue)
            if (typ[0], mod) not in types:
                problems.append(f"segment {n} ({label}): type code {typ[0]} (modifier {mod}) not one of {types}")
            if cat[0] not in cats:
                problems.append(f"segment {n} ({label}): category code {cat[0]} not one of {sorted(cats)}")
        elif key not in EXPECTED_CODES:
            rep.note(f"segment {n} ({label}): no expected code on file for this label; only the SCT scheme is checked")
    for p in problems:
        rep.fail("SEG: " + p)
    if not problems:
        rep.ok("every segment has a label, SCT category/type codes and an algorithm identification")
    if classes is not None:
        rep.expect(labels == classes, f"segment labels equal the expected classes {classes}",
                   f"SEG: segment labels {labels} != expected {classes}")
    return max(numbers, default=0)


def rebuild_seg(seg, src: Source, seg_type: str, n_segments: int, rep: Report) -> np.ndarray:
    """The SEG's label volume on the source grid, indexed [column, row, slice]."""
    C, R, S = src.shape
    vol = np.zeros((C, R, S), np.int64)
    rows, cols = int(seg.Rows), int(seg.Columns)
    if (cols, rows) != (C, R):
        raise Fatal(f"SEG: frame size {cols}x{rows} != source {C}x{R}")
    nframes = int(getattr(seg, "NumberOfFrames", 1))
    pix = seg.pixel_array  # highdicom's/pydicom's decode of the stored frames
    pix = np.asarray(pix).reshape(nframes, rows, cols)
    sh = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    if src.iop is not None and sh is not None:
        if "PlaneOrientationSequence" in sh:
            iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
            rep.expect(np.allclose(iop, src.iop, atol=1e-4), "SEG plane orientation equals the source's",
                       f"SEG: ImageOrientationPatient {iop.tolist()} != source {src.iop.tolist()}")
        if "PixelMeasuresSequence" in sh:
            ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
            rep.expect(np.allclose(ps, src.pixel_spacing, atol=1e-4), "SEG pixel spacing equals the source's",
                       f"SEG: PixelSpacing {ps.tolist()} != source {src.pixel_spacing.tolist()}")
    inv_lps = np.linalg.inv(LPS_TO_RAS @ src.affine) if src.affine is not None else None
    seen = set()
    by_ref = by_pos = 0
    pffgs = list(getattr(seg, "PerFrameFunctionalGroupsSequence", []))
    if len(pffgs) != nframes:
        raise Fatal(f"SEG: {len(pffgs)} PerFrameFunctionalGroupsSequence items for {nframes} frames")

    def group(f, name):
        """A functional group macro of frame f: per-frame first, then shared."""
        for grp in (pffgs[f], sh):
            if grp is not None and name in grp and len(grp[name].value):
                return grp[name].value
        return None

    for f in range(nframes):
        sl_ref = sl_pos = None
        derivation = group(f, "DerivationImageSequence")
        if derivation:
            refs = [si for d in derivation for si in getattr(d, "SourceImageSequence", [])]
            cands = set()
            for si in refs:
                uid = str(si.ReferencedSOPInstanceUID)
                if "ReferencedFrameNumber" in si and (uid, int(si.ReferencedFrameNumber)) in src.slice_of_frame:
                    cands.add(src.slice_of_frame[(uid, int(si.ReferencedFrameNumber))])
                elif uid in src.slice_of_sop:
                    cands.add(src.slice_of_sop[uid])
                else:
                    rep.fail(f"SEG frame {f + 1}: source image {uid} is not in the source")
            if len(cands) > 1:
                raise Fatal(f"SEG frame {f + 1}: refers to several source slices {sorted(cands)}")
            if cands:
                sl_ref = cands.pop()
        plane = group(f, "PlanePositionSequence")
        if plane and inv_lps is not None:
            ipp = np.array(plane[0].ImagePositionPatient, float)
            crs = inv_lps @ np.append(ipp, 1.0)
            k = int(round(crs[2]))
            if abs(crs[0]) > GRID_TOL or abs(crs[1]) > GRID_TOL or abs(crs[2] - k) > GRID_TOL or not 0 <= k < S:
                raise Fatal(f"SEG frame {f + 1}: ImagePositionPatient {ipp.tolist()} is not the origin of a "
                            f"source slice (voxel {np.round(crs[:3], 3).tolist()})")
            sl_pos = k
        if sl_ref is not None and sl_pos is not None and sl_ref != sl_pos:
            raise Fatal(f"SEG frame {f + 1}: referenced source slice {sl_ref} but positioned at slice {sl_pos}")
        k = sl_ref if sl_ref is not None else sl_pos
        if k is None:
            if S == 1:
                k = 0
            else:
                raise Fatal(f"SEG frame {f + 1}: neither a source image reference nor a plane position")
        by_ref += sl_ref is not None
        by_pos += sl_pos is not None
        frame = pix[f].T.astype(np.int64)  # [row, col] -> [col, row]
        if seg_type == "BINARY":
            ident = group(f, "SegmentIdentificationSequence")
            if not ident:
                raise Fatal(f"SEG frame {f + 1}: no SegmentIdentificationSequence")
            segnum = int(ident[0].ReferencedSegmentNumber)
            if not 1 <= segnum <= n_segments:
                raise Fatal(f"SEG frame {f + 1}: segment {segnum} is not described")
            if (k, segnum) in seen:
                raise Fatal(f"SEG: two frames for segment {segnum} on slice {k}")
            seen.add((k, segnum))
            if frame.max() > 1:
                raise Fatal(f"SEG frame {f + 1}: binary frame holds values > 1")
            on = frame == 1
            clash = on & (vol[:, :, k] != 0)
            if clash.any():
                raise Fatal(f"SEG: segments overlap on slice {k} ({int(clash.sum())} voxels)")
            vol[:, :, k][on] = segnum
        else:
            if k in seen:
                raise Fatal(f"SEG: two label-map frames for slice {k}")
            seen.add(k)
            if frame.max() > n_segments:
                raise Fatal(f"SEG frame {f + 1}: label {int(frame.max())} is not a described segment")
            vol[:, :, k] = frame
    rep.info["seg"]["frames"] = nframes
    rep.info["seg"]["frames_located_by"] = {"source_reference": by_ref, "plane_position": by_pos}
    return vol


def highdicom_cross_check(seg, src: Source, vol: np.ndarray, rep: Report):
    """highdicom's own reassembly by source instance must give the same labels."""
    try:
        if src.kind == "dicom-series":
            arr = seg.get_pixels_by_source_instance(src.sops_in_order, combine_segments=True,
                                                    assert_missing_frames_are_empty=True)
        elif src.kind == "dicom-multiframe":
            sop = src.sops_in_order[0]
            frames = [fr for (_, fr), _s in sorted(src.slice_of_frame.items(), key=lambda kv: kv[1])]
            arr = seg.get_pixels_by_source_frame(sop, frames, combine_segments=True,
                                                 assert_missing_frames_are_empty=True)
        else:
            arr = seg.get_pixels_by_source_instance(src.sops_in_order, combine_segments=True,
                                                    assert_missing_frames_are_empty=True)
    except Exception as e:
        rep.fail(f"SEG: highdicom cannot reassemble the segmentation by source image: {e}")
        return
    arr = np.asarray(arr).astype(np.int64)  # [slice, row, col]
    rep.expect(arr.transpose(2, 1, 0).shape == vol.shape and np.array_equal(arr.transpose(2, 1, 0), vol),
               "highdicom's reassembly by source image equals the frame-by-frame rebuild",
               "SEG: highdicom's reassembly by source image differs from the frame-by-frame rebuild")


def check_seg(path: Path, src: Source, nifti_img, nifti_data, classes, seg_type_arg, rep: Report):
    rep.info["seg"] = {}
    try:
        seg = hd.seg.segread(str(path))
        rep.ok("highdicom reads the SEG")
        reader = "highdicom"
    except Exception as e:
        ds = pydicom.dcmread(path)
        if str(getattr(ds, "SOPClassUID", "")) == LABELMAP_SEG_STORAGE:
            rep.note(f"highdicom cannot read the label-map SEG ({e}); falling back to pydicom")
            seg, reader = ds, "pydicom"
        else:
            raise Fatal(f"{path.name}: highdicom cannot read it: {e}")
    rep.info["seg"]["reader"] = reader
    sop_class = str(seg.SOPClassUID)
    seg_type = str(getattr(seg, "SegmentationType", ""))
    rep.info["seg"].update({"sop_class": sop_class, "segmentation_type": seg_type,
                            "transfer_syntax": str(seg.file_meta.TransferSyntaxUID) if hasattr(seg, "file_meta") else None})
    want = {"binary": (SEG_STORAGE, "BINARY"), "labelmap": (LABELMAP_SEG_STORAGE, "LABELMAP")}
    if seg_type_arg:
        wc, wt = want[seg_type_arg]
        rep.expect(sop_class == wc and seg_type == wt, f"SOP class {sop_class} and SegmentationType {seg_type}",
                   f"SEG: SOP class {sop_class} / SegmentationType {seg_type}, want {wc} / {wt}")
    else:
        rep.expect((sop_class, seg_type) in want.values(), f"SOP class {sop_class} and SegmentationType {seg_type}",
                   f"SEG: unexpected SOP class {sop_class} / SegmentationType {seg_type}")
    if seg_type not in ("BINARY", "LABELMAP"):
        raise Fatal(f"SEG: SegmentationType {seg_type} not checked (BINARY or LABELMAP)")

    rep.expect(str(seg.StudyInstanceUID) == src.study_uid, "SEG StudyInstanceUID equals the source's",
               f"SEG: StudyInstanceUID {seg.StudyInstanceUID} != source {src.study_uid}")
    if src.for_uid is not None:
        rep.expect(str(getattr(seg, "FrameOfReferenceUID", "")) == src.for_uid,
                   "SEG FrameOfReferenceUID equals the source's",
                   f"SEG: FrameOfReferenceUID {getattr(seg, 'FrameOfReferenceUID', None)} != source {src.for_uid}")
    rep.expect(str(getattr(seg, "PatientID", "")) == (src.patient_id or ""), "SEG PatientID equals the source's",
               f"SEG: PatientID {getattr(seg, 'PatientID', None)!r} != source {src.patient_id!r}")
    # references
    refs = list(getattr(seg, "ReferencedSeriesSequence", []))
    if not refs:
        rep.fail("SEG: no ReferencedSeriesSequence")
    else:
        series = [str(r.SeriesInstanceUID) for r in refs]
        rep.expect(series == [src.series_uid], "ReferencedSeriesSequence names only the source series",
                   f"SEG: ReferencedSeriesSequence names {series}, want only [{src.series_uid}]")
        inst = [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
                for r in refs for i in getattr(r, "ReferencedInstanceSequence", [])]
        source_sops = set(src.sops_in_order)
        foreign = [u for _, u in inst if u not in source_sops]
        wrong_class = [c for c, _ in inst if c != src.sop_class]
        ok = bool(inst) and not foreign and not wrong_class
        rep.expect(ok, f"ReferencedInstanceSequence: {len(inst)} instance(s), all from the source",
                   f"SEG: referenced instances: {len(inst)} listed, {len(foreign)} not in the source, "
                   f"{len(wrong_class)} with a SOP class other than {src.sop_class}")
        rep.info["seg"]["referenced_instances"] = len(inst)
    n_segments = check_segments(seg, classes, rep)
    vol = rebuild_seg(seg, src, seg_type, n_segments, rep)
    if rep.info["seg"]["frames_located_by"]["source_reference"] == 0:
        rep.note("SEG frames carry no source image references (DerivationImageSequence): "
                 "highdicom's reassembly by source image skipped; frames were placed by plane position")
    elif reader == "highdicom" and src.kind != "dicom-2d":
        highdicom_cross_check(seg, src, vol, rep)
    # compare with the NIfTI labels, through the affines
    if nifti_data is not None:
        if src.affine is not None:
            flat, _ = map_indices(nifti_img.affine, nifti_data.shape, src.affine, src.shape,
                                  "NIfTI vs SEG grid")
            seg_on_nifti = vol.reshape(-1)[flat].reshape(nifti_data.shape)
        else:
            if nifti_data.shape != vol.shape:
                raise Fatal("NIfTI and SEG grids differ in size")
            seg_on_nifti = vol
        diff = seg_on_nifti != nifti_data
        if diff.any():
            where = np.argwhere(diff)[:5].tolist()
            rep.fail(f"SEG pixels differ from the NIfTI labels at {int(diff.sum())} voxel(s), e.g. NIfTI "
                     f"voxels {where} (NIfTI {[int(nifti_data[tuple(w)]) for w in where]}, "
                     f"SEG {[int(seg_on_nifti[tuple(w)]) for w in where]})")
        else:
            rep.ok(f"SEG pixels equal the NIfTI labels voxel by voxel ({nifti_data.size} voxels, "
                   f"{int((nifti_data > 0).sum())} labelled)")
    return seg_type


def run_dciodvfy(path: Path, rep: Report):
    exe = shutil.which("dciodvfy")
    if not exe:
        rep.note("dciodvfy not installed (Debian package dicom3tools): validation skipped")
        rep.info["dciodvfy"] = "not installed"
        return
    p = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (p.stdout + p.stderr).splitlines()
    errors = [l for l in lines if l.startswith("Error")]
    warnings = [l for l in lines if l.startswith("Warning")]
    rep.info["dciodvfy"] = {"errors": errors, "warnings": warnings}
    for w in warnings:
        print(f"dciodvfy: {w}", file=sys.stderr)
    if errors:
        for e in errors:
            rep.fail(f"dciodvfy: {e}")
    else:
        rep.ok(f"dciodvfy: no errors ({len(warnings)} warning(s))")


# --------------------------------------------------------------------------------------------
# Dice against a ground truth


def dice(pred_img, pred, gt_path: Path, n_classes: int | None, rep: Report):
    gimg = nib.load(str(gt_path))
    gt = np.asanyarray(gimg.dataobj).astype(np.int64)
    exact = True
    try:
        flat, inside = map_indices(pred_img.affine, pred.shape, gimg.affine, gt.shape, "prediction vs ground truth")
    except Fatal as e:
        rep.note(f"ground truth grid: {e}; Dice uses nearest voxels")
        flat, inside = map_indices(pred_img.affine, pred.shape, gimg.affine, gt.shape, "", exact=False)
        exact = False
    g = np.where(inside, gt.reshape(-1)[flat], 0)
    p = pred.reshape(-1)
    n = n_classes or int(max(g.max(), p.max())) + 1
    out = {}
    for c in range(1, n):
        a, b = p == c, g == c
        denom = int(a.sum() + b.sum())
        out[c] = None if denom == 0 else round(2.0 * int((a & b).sum()) / denom, 4)
    rep.info["dice"] = out
    rep.info["dice_grid_exact"] = exact
    return out


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--labels", type=Path, help="ground-truth label NIfTI: prints per-class Dice")
    ap.add_argument("--expect-classes", help="comma-separated class names, background first")
    ap.add_argument("--seg-type", choices=["binary", "labelmap"])
    ap.add_argument("--series-uid", help="which series of a multi-series source folder")
    ap.add_argument("--require-seg", action="store_true", help="fail if OUT/NAME.seg.dcm is missing")
    ap.add_argument("--no-dciodvfy", action="store_true")
    args = ap.parse_args(argv)

    rep = Report()
    classes = None
    all_classes = None
    if args.expect_classes:
        all_classes = [c.strip() for c in args.expect_classes.split(",") if c.strip()]
        classes = [c for c in all_classes if c.lower() != "background"]
    nii_path = args.out_dir / f"{args.name}.nii.gz"
    seg_path = args.out_dir / f"{args.name}.seg.dcm"
    json_path = args.out_dir / f"{args.name}.json"
    summary = {"source": str(args.source), "out_dir": str(args.out_dir), "name": args.name}
    try:
        series_uid = args.series_uid
        if series_uid is None and seg_path.exists() and args.source.is_dir():
            try:
                sds = pydicom.dcmread(seg_path, stop_before_pixels=True)
                series_uid = str(sds.ReferencedSeriesSequence[0].SeriesInstanceUID)
                rep.note(f"source series taken from the SEG's ReferencedSeriesSequence: {series_uid}")
            except Exception:
                pass
        src = load_source(args.source, series_uid, rep)
        summary["source_kind"] = src.kind
        summary["source_shape"] = list(src.shape)
        if src.affine is not None:
            summary["source_affine"] = np.round(src.affine, 6).tolist()
        img = data = None
        if not nii_path.exists():
            rep.fail(f"{nii_path} is missing")
        else:
            img, data = check_nifti(nii_path, src, rep)
            if all_classes is not None:
                rep.expect(data.max() < len(all_classes), "NIfTI labels are within the class list",
                           f"{nii_path.name}: label {int(data.max())} beyond the {len(all_classes)} classes")
        if seg_path.exists():
            if src.kind == "nifti":
                rep.note("a SEG was written for a NIfTI source; it is not checked")
            else:
                if data is not None and tuple(data.shape) != tuple(src.shape):
                    raise Fatal("NIfTI grid differs from the source; SEG comparison skipped")
                seg_type = check_seg(seg_path, src, img, data, classes, args.seg_type, rep)
                if seg_type == "BINARY" and not args.no_dciodvfy:
                    run_dciodvfy(seg_path, rep)
        elif args.require_seg or args.seg_type:
            rep.fail(f"{seg_path} is missing")
        elif src.kind != "nifti":
            rep.note(f"no {seg_path.name}: SEG checks skipped")
        if json_path.exists():
            try:
                rec = json.loads(json_path.read_text())
                rep.ok(f"{json_path.name} is valid JSON")
                summary["record_keys"] = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            except Exception as e:
                rep.fail(f"{json_path.name}: not valid JSON: {e}")
        else:
            rep.note(f"no {json_path.name}")
        if args.labels and data is not None:
            dice(img, data, args.labels, len(all_classes) if all_classes else None, rep)
            if all_classes and "dice" in rep.info:
                rep.info["dice"] = {all_classes[c] if c < len(all_classes) else str(c): v
                                    for c, v in rep.info["dice"].items()}
    except Fatal as e:
        rep.fail(str(e))
    except Exception as e:  # a reader choking on the output is a failure too
        import traceback
        traceback.print_exc()
        rep.fail(f"unexpected {type(e).__name__}: {e}")
    summary.update(rep.info)
    summary["passed"] = rep.passed
    summary["notes"] = rep.notes
    summary["errors"] = rep.errors
    summary["ok"] = not rep.errors
    print(json.dumps(summary, indent=2, default=str))
    if rep.errors:
        for e in rep.errors:
            print(f"check_outputs: FAIL: {e}", file=sys.stderr)
        return 1
    print(f"check_outputs: OK ({len(rep.passed)} checks)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
