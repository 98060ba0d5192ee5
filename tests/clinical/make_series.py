#!/usr/bin/env python3
"""A CT-like axial series for timing (`vmunet infer` on a realistic size): N slices of
SIZE x SIZE int16 with a body ellipse and organ-like blobs, CT Image Storage, Explicit VR Little
Endian, one file per slice (pydicom). Deterministic.

    make_series.py OUT_DIR [--slices 100] [--size 512]
"""
import argparse
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage


def uid(n: int) -> str:
    return f"2.25.{(0x5eed << 96) + n}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n, s = a.slices, a.size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:s, 0:s] / s - 0.5
    for k in range(n):
        z = k / max(n - 1, 1) - 0.5
        hu = np.full((s, s), -1000.0)
        body = (xx / 0.42) ** 2 + (yy / 0.32) ** 2 < 1
        hu[body] = 40
        for (cx, cy, cz, r, v) in [(-0.15, 0.0, 0.0, 0.12, 60), (0.18, 0.05, 0.1, 0.07, 50),
                                   (0.1, 0.1, -0.2, 0.05, 150), (-0.1, 0.12, -0.2, 0.05, 150),
                                   (0.0, 0.08, 0.0, 0.02, 200)]:
            blob = (xx - cx) ** 2 + (yy - cy) ** 2 + (z - cz) ** 2 < r ** 2
            hu[blob] = v
        hu[body] += rng.normal(0, 10, body.sum())
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = uid(1000 + k)
        ds.StudyInstanceUID = uid(1)
        ds.SeriesInstanceUID = uid(2)
        ds.FrameOfReferenceUID = uid(3)
        ds.PatientName = "Timing^Phantom"
        ds.PatientID = "TIMING"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261207", "120000", "1", ""
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [-200.0, -200.0, -250.0 + 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [400 / s, 400 / s]
        ds.SliceThickness = 2.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = s
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.round(hu).astype("<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        pydicom.dcmwrite(out / f"{rng.integers(1 << 48):012x}", ds, enforce_file_format=True)


if __name__ == "__main__":
    main()
