#!/usr/bin/env python3
"""Self-test of check_outputs.py, before (and beside) the Rust writer.

    _selftest.py [WORK_DIR]

Builds the fixtures, writes reference outputs from the fixture ground truth with highdicom
(BINARY and LABELMAP SEGs, omit_empty_frames) and nibabel, and runs check_outputs.py on them:
every good case must pass (Dice 1.0 against the ground truth), every broken case must fail.
The reference writer (`reference_write`) shows what the Rust writer is expected to produce.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HERE = Path(__file__).resolve().parent
PY = sys.executable
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CLASSES = ["background", "aorta", "gallbladder", "kidney_l", "kidney_r", "liver", "pancreas",
           "spleen", "stomach"]
SCT = "SCT"
ANATOMICAL_STRUCTURE = hd.sr.CodedConcept("123037004", SCT, "Anatomical Structure")
TYPE_CODES = {
    "aorta": ("15825003", "Aorta"),
    "gallbladder": ("28231008", "Gallbladder"),
    "kidney_l": ("18639004", "Left kidney"),
    "kidney_r": ("9846003", "Right kidney"),
    "liver": ("10200004", "Liver"),
    "pancreas": ("15776009", "Pancreas"),
    "spleen": ("78961009", "Spleen"),
    "stomach": ("69695003", "Stomach"),
    "lesion": ("52988006", "Lesion"),
}


# --------------------------------------------------------------------------------------------
# reference writer


def load_source(source: Path):
    """(datasets for highdicom, RAS affine (col,row,slice), shape (C,R,S), frame -> slice map)."""
    if source.is_dir():
        dss = [pydicom.dcmread(p) for p in sorted(source.iterdir())]
        iop = np.array(dss[0].ImageOrientationPatient, float)
        nrm = np.cross(iop[:3], iop[3:])
        dss.sort(key=lambda d: float(np.array(d.ImagePositionPatient, float) @ nrm))
        pos = [np.array(d.ImagePositionPatient, float) for d in dss]
        ps = np.array(dss[0].PixelSpacing, float)
        A = np.eye(4)
        A[:3, 0], A[:3, 1] = iop[:3] * ps[1], iop[3:] * ps[0]
        A[:3, 2] = (pos[-1] - pos[0]) / (len(pos) - 1)
        A[:3, 3] = pos[0]
        return dss, LPS_TO_RAS @ A, (int(dss[0].Columns), int(dss[0].Rows), len(dss)), list(range(len(dss)))
    ds = pydicom.dcmread(source)
    if "PerFrameFunctionalGroupsSequence" in ds:
        sh = ds.SharedFunctionalGroupsSequence[0]
        iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
        nrm = np.cross(iop[:3], iop[3:])
        pos = np.array([f.PlanePositionSequence[0].ImagePositionPatient for f in ds.PerFrameFunctionalGroupsSequence], float)
        order = np.argsort(pos @ nrm)
        A = np.eye(4)
        A[:3, 0], A[:3, 1] = iop[:3] * ps[1], iop[3:] * ps[0]
        A[:3, 2] = (pos[order[-1]] - pos[order[0]]) / (len(pos) - 1)
        A[:3, 3] = pos[order[0]]
        slice_of_frame = np.empty(len(order), int)
        slice_of_frame[order] = np.arange(len(order))
        return [ds], LPS_TO_RAS @ A, (int(ds.Columns), int(ds.Rows), len(order)), slice_of_frame.tolist()
    return [ds], None, (int(ds.Columns), int(ds.Rows), 1), [0]


def labels_on_grid(gt_path: Path, affine: np.ndarray, shape) -> np.ndarray:
    """Ground truth mapped onto the grid (exact index mapping through the affines)."""
    g = nib.load(str(gt_path))
    gt = np.asanyarray(g.dataobj)
    ijk = np.indices(shape).reshape(3, -1)
    M = np.linalg.inv(g.affine) @ affine
    pos = M[:3, :3] @ ijk + M[:3, 3:4]
    idx = np.rint(pos).astype(int)
    assert np.abs(pos - idx).max() < 1e-3, "ground truth grid does not line up"
    return gt[idx[0], idx[1], idx[2]].reshape(shape).astype(np.uint8)


def segment_descriptions(names):
    algo = hd.AlgorithmIdentificationSequence(name="VM-UNet", version="0.1.0",
                                              family=codes.cid7162.ArtificialIntelligence)
    out = []
    for i, name in enumerate(names, start=1):
        code, meaning = TYPE_CODES[name]
        cat = (hd.sr.CodedConcept("49755003", SCT, "Morphologically Abnormal Structure")
               if name == "lesion" else ANATOMICAL_STRUCTURE)
        out.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=name, segmented_property_category=cat,
            segmented_property_type=hd.sr.CodedConcept(code, SCT, meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo))
    return out


def reference_write(source: Path, out: Path, name: str, labels_crs: np.ndarray, affine, classes,
                    seg_type="BINARY", dss=None, slice_of_frame=None, write_seg=True):
    """NIfTI (uint8, source affine, voxel axes column,row,slice) + SEG + JSON record."""
    out.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(labels_crs.astype(np.uint8), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(out / f"{name}.nii.gz"))
    rec = {"source": str(source), "classes": classes, "shape": list(labels_crs.shape)}
    if write_seg:
        frames_spatial = labels_crs.transpose(2, 1, 0)  # [slice, row, col]
        # highdicom wants the frames in the source's frame order
        pixel = frames_spatial[np.asarray(slice_of_frame)] if slice_of_frame is not None else frames_spatial
        seg = hd.seg.Segmentation(
            source_images=dss, pixel_array=np.ascontiguousarray(pixel),
            segmentation_type=seg_type, segment_descriptions=segment_descriptions(classes[1:]),
            series_instance_uid=generate_uid(), series_number=99, sop_instance_uid=generate_uid(),
            instance_number=1, manufacturer="vmunet", manufacturer_model_name="VM-UNet",
            software_versions="0.1.0", device_serial_number="0", omit_empty_frames=True,
            series_description="VM-UNet segmentation", content_label="VMUNET",
            content_description="selftest reference", transfer_syntax_uid=ExplicitVRLittleEndian)
        if "FrameOfReferenceUID" not in seg and "PatientOrientation" not in seg:
            # General Image: Patient Orientation is type 2C when there is no plane geometry
            # (highdicom leaves it out; dciodvfy reports the omission as an error)
            seg.PatientOrientation = dss[0].get("PatientOrientation", "")
        seg.save_as(out / f"{name}.seg.dcm")
        rec["seg"] = f"{name}.seg.dcm"
    (out / f"{name}.json").write_text(json.dumps(rec, indent=1))


# --------------------------------------------------------------------------------------------


def run_check(*args) -> tuple[int, dict, str]:
    p = subprocess.run([PY, str(HERE / "check_outputs.py"), *map(str, args)], capture_output=True, text=True)
    try:
        summary = json.loads(p.stdout)
    except Exception:
        summary = {}
    return p.returncode, summary, p.stderr


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="vmunet-clinical-"))
    fx, out = work / "fixtures", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([PY, str(HERE / "make_fixtures.py"), str(fx)], capture_output=True, text=True)
    if r.returncode:
        print(r.stdout, r.stderr)
        return 1
    gt = fx / "ct_labels.nii.gz"
    ec = ",".join(CLASSES)
    results = []
    failures = []

    def expect(name, want_ok, args, must_mention=None, dice_one=False):
        rc, summary, err = run_check(*args)
        good = (rc == 0) == want_ok
        for m in ([must_mention] if isinstance(must_mention, str) else must_mention or []):
            if good and not any(m in e for e in summary.get("errors", [])):
                good = False
                err += f"\n(expected an error mentioning {m!r})"
        if good and dice_one:
            d = summary.get("dice", {})
            if not d or any(v not in (None, 1.0) for v in d.values()):
                good = False
                err += f"\n(expected Dice 1.0, got {d})"
        results.append({"case": name, "expect": "pass" if want_ok else "fail", "rc": rc, "ok": good,
                        "errors": summary.get("errors", [])[:3]})
        if not good:
            failures.append(name)
            print(f"--- {name}: rc {rc}\n{json.dumps(summary, indent=1)[:4000]}\n{err[-3000:]}", file=sys.stderr)

    # 1. ct/ (explicit, uint16), BINARY
    dss, A, shape, sof = load_source(fx / "ct")
    lab = labels_on_grid(gt, A, shape)
    reference_write(fx / "ct", out, "ct", lab, A, CLASSES, "BINARY", dss)
    base = ["--source", fx / "ct", "--out-dir", out, "--name", "ct", "--labels", gt, "--expect-classes", ec]
    expect("ct binary", True, base + ["--seg-type", "binary"], dice_one=True)
    expect("ct binary, asked for labelmap", False, base + ["--seg-type", "labelmap"], "SOP class")
    expect("ct binary, classes out of order", False,
           ["--source", fx / "ct", "--out-dir", out, "--name", "ct", "--expect-classes",
            "background,liver,aorta,gallbladder,kidney_l,kidney_r,pancreas,spleen,stomach"], "segment labels")
    # flip one voxel in the NIfTI
    flip = out / "flip"
    flip.mkdir()
    for suffix in (".seg.dcm", ".json"):
        shutil.copyfile(out / f"ct{suffix}", flip / f"ct{suffix}")
    bad = lab.copy()
    bad[20, 30, 10] = (bad[20, 30, 10] + 1) % 9
    img = nib.Nifti1Image(bad, A)
    img.set_sform(A, code=1)
    img.set_qform(A, code=1)
    nib.save(img, str(flip / "ct.nii.gz"))
    expect("ct binary, one NIfTI voxel flipped", False,
           ["--source", fx / "ct", "--out-dir", flip, "--name", "ct", "--seg-type", "binary"], "differ from the NIfTI")
    # the NIfTI written in the NIfTI fixture's axis order (a writer ignoring DICOM geometry)
    naive = out / "naive"
    naive.mkdir()
    shutil.copyfile(out / "ct.seg.dcm", naive / "ct.seg.dcm")
    shutil.copyfile(gt, naive / "ct.nii.gz")
    expect("ct, NIfTI on another voxel grid", False,
           ["--source", fx / "ct", "--out-dir", naive, "--name", "ct"], "shape")
    # affine of a writer that forgets the LPS -> RAS flip
    lps = out / "lps"
    lps.mkdir()
    img = nib.Nifti1Image(lab, LPS_TO_RAS @ A)
    img.set_sform(LPS_TO_RAS @ A, code=1)
    nib.save(img, str(lps / "ct.nii.gz"))
    expect("ct, NIfTI affine in LPS", False, ["--source", fx / "ct", "--out-dir", lps, "--name", "ct"], "affine")

    # a tampered SEG: another frame of reference, a segment without algorithm identification,
    # a left kidney coded as plain "Kidney"
    tam = out / "tampered"
    tam.mkdir()
    shutil.copyfile(out / "ct.nii.gz", tam / "ct.nii.gz")
    sds = pydicom.dcmread(out / "ct.seg.dcm")
    sds.FrameOfReferenceUID = generate_uid()
    del sds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
    sds.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue = "64033007"
    sds.save_as(tam / "ct.seg.dcm")
    expect("tampered SEG", False, ["--source", fx / "ct", "--out-dir", tam, "--name", "ct"],
           ["FrameOfReferenceUID", "SegmentationAlgorithmIdentificationSequence", "type code 64033007"])
    if shutil.which("dciodvfy"):
        dv = out / "dciodvfy"
        dv.mkdir()
        shutil.copyfile(out / "ct.nii.gz", dv / "ct.nii.gz")
        sds = pydicom.dcmread(out / "ct.seg.dcm")
        del sds.SeriesNumber  # Type 1 in the Segmentation Series module
        sds.save_as(dv / "ct.seg.dcm")
        expect("SEG without SeriesNumber (dciodvfy)", False,
               ["--source", fx / "ct", "--out-dir", dv, "--name", "ct"], "dciodvfy: Error")

    # 2. LABELMAP
    reference_write(fx / "ct", out, "ct_lm", lab, A, CLASSES, "LABELMAP", dss)
    expect("ct labelmap", True, ["--source", fx / "ct", "--out-dir", out, "--name", "ct_lm", "--labels", gt,
                                 "--expect-classes", ec, "--seg-type", "labelmap"], dice_one=True)

    # 3. ct-implicit (implicit VR, int16)
    dss_i, A_i, shape_i, _ = load_source(fx / "ct-implicit")
    reference_write(fx / "ct-implicit", out, "ct_implicit", labels_on_grid(gt, A_i, shape_i), A_i, CLASSES,
                    "BINARY", dss_i)
    expect("ct-implicit binary", True, ["--source", fx / "ct-implicit", "--out-dir", out, "--name", "ct_implicit",
                                        "--labels", gt, "--expect-classes", ec, "--seg-type", "binary"], dice_one=True)
    # a SEG of ct-implicit checked against ct/: wrong references
    wrong = out / "wrongref"
    wrong.mkdir()
    shutil.copyfile(out / "ct_implicit.seg.dcm", wrong / "ct.seg.dcm")
    shutil.copyfile(out / "ct.nii.gz", wrong / "ct.nii.gz")
    expect("SEG referencing another series", False,
           ["--source", fx / "ct", "--out-dir", wrong, "--name", "ct", "--series-uid",
            str(dss[0].SeriesInstanceUID)], "ReferencedSeriesSequence")

    # 4. two-series folder: the SEG names the main series
    reference_write(fx / "ct", out, "two", lab, A, CLASSES, "BINARY", dss)
    expect("two-series folder", True, ["--source", fx / "two-series", "--out-dir", out, "--name", "two",
                                       "--labels", gt, "--expect-classes", ec, "--seg-type", "binary"], dice_one=True)

    # 5. enhanced CT (multi-frame, shuffled frames)
    dss_e, A_e, shape_e, sof_e = load_source(fx / "enhanced-ct.dcm")
    reference_write(fx / "enhanced-ct.dcm", out, "enh", labels_on_grid(gt, A_e, shape_e), A_e, CLASSES,
                    "BINARY", dss_e, slice_of_frame=sof_e)
    expect("enhanced-ct binary", True, ["--source", fx / "enhanced-ct.dcm", "--out-dir", out, "--name", "enh",
                                        "--labels", gt, "--expect-classes", ec, "--seg-type", "binary"], dice_one=True)

    # 6. NIfTI source: the output keeps the source's affine and grid
    src_img = nib.load(str(fx / "ct.nii.gz"))
    lab_n = labels_on_grid(gt, src_img.affine, src_img.shape)
    reference_write(fx / "ct.nii.gz", out, "ctn", lab_n, src_img.affine, CLASSES, write_seg=False)
    expect("nifti source", True, ["--source", fx / "ct.nii.gz", "--out-dir", out, "--name", "ctn",
                                  "--labels", gt, "--expect-classes", ec], dice_one=True)
    expect("nifti source, output on the DICOM grid", False,
           ["--source", fx / "ct.nii.gz", "--out-dir", out, "--name", "ct"], "shape")

    # 7. the dermoscopy photo (no plane geometry): one lesion segment
    pds = pydicom.dcmread(fx / "photo.dcm")
    yy, xx = np.mgrid[: pds.Rows, : pds.Columns]
    mask = (((xx - pds.Columns / 2) / (pds.Columns / 4)) ** 2 + ((yy - pds.Rows / 2) / (pds.Rows / 4)) ** 2 < 1)
    try:
        reference_write(fx / "photo.dcm", out, "photo", mask.T[:, :, None].astype(np.uint8), np.eye(4),
                        ["background", "lesion"], "BINARY", [pds])
        expect("photo binary", True, ["--source", fx / "photo.dcm", "--out-dir", out, "--name", "photo",
                                      "--expect-classes", "background,lesion", "--seg-type", "binary"])
    except Exception as e:  # highdicom may refuse some sources; report, don't hide
        results.append({"case": "photo binary", "ok": False, "errors": [f"reference writer: {e}"]})
        failures.append("photo binary")

    print(json.dumps({"work_dir": str(work), "cases": results, "failures": failures}, indent=1))
    print(f"selftest: {len(results) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
