#!/usr/bin/env python3
"""The test phantom (make_fixtures.py) as a Synapse dataset in TransUNet's layout, to train the
small CT model the docs' picture and the trained-model test use (models/README.md has the
command): slices in the canonical orientation vmunet feeds the model (for this axial-ish
series: the DICOM pixel arrays in spatial order), HU windowed to [-125, 275] and scaled to
[0, 1] as TransUNet did; several seeds of the phantom for training, one for validation.

    make_phantom_synapse.py OUT_DIR [--cases 6]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pydicom

HERE = Path(__file__).resolve().parent


def case(seed: int, tmp: Path):
    fx = tmp / f"fx{seed}"
    subprocess.run([sys.executable, str(HERE / "make_fixtures.py"), str(fx), "--seed", str(seed),
                    "--photo", "synth"], check=True, stdout=subprocess.DEVNULL)
    import json
    m = json.loads((fx / "fixtures.json").read_text())
    by_uid = {}
    for f in (fx / "ct").iterdir():
        ds = pydicom.dcmread(f)
        by_uid[ds.SOPInstanceUID] = ds
    order = m["series"]["ct"]["sop_instance_uids"]
    hu = np.stack([by_uid[u].pixel_array.astype(np.float32) * float(by_uid[u].RescaleSlope)
                   + float(by_uid[u].RescaleIntercept) for u in order])
    import nibabel as nib
    lab_img = nib.load(fx / "ct_labels.nii.gz")
    # Ground truth on the DICOM grid: map each DICOM voxel's world position to the NIfTI voxel.
    g = m["dicom_affine_ras"]
    A = np.array(g)
    inv = np.linalg.inv(lab_img.affine)
    lab = np.asarray(lab_img.dataobj).astype(np.uint8)
    d, r, c = hu.shape
    kk, jj, ii = np.meshgrid(np.arange(d), np.arange(r), np.arange(c), indexing="ij")
    vox = np.stack([ii, jj, kk, np.ones_like(ii)], -1).reshape(-1, 4).T.astype(float)
    ijk = np.rint((inv @ A @ vox)[:3]).astype(int)
    labels = lab[ijk[0], ijk[1], ijk[2]].reshape(d, r, c)
    image = (np.clip(hu, -125, 275) + 125) / 400
    return image.astype(np.float32), labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cases", type=int, default=6)
    a = ap.parse_args()
    out = Path(a.out)
    (out / "train_npz").mkdir(parents=True, exist_ok=True)
    (out / "test_vol_h5").mkdir(parents=True, exist_ok=True)
    (out / "lists/lists_Synapse").mkdir(parents=True, exist_ok=True)
    train, test = [], []
    with tempfile.TemporaryDirectory() as t:
        for i in range(a.cases + 1):
            image, labels = case(100 + i, Path(t))
            name = f"case{i:04d}"
            if i < a.cases:
                for k in range(image.shape[0]):
                    n = f"{name}_slice{k:03d}"
                    np.savez(out / "train_npz" / f"{n}.npz", image=image[k], label=labels[k].astype(np.float32))
                    train.append(n)
            else:
                with h5py.File(out / "test_vol_h5" / f"{name}.npy.h5", "w") as h:
                    h["image"] = image
                    h["label"] = labels.astype(np.float32)
                test.append(name)
    (out / "lists/lists_Synapse/train.txt").write_text("\n".join(train) + "\n")
    (out / "lists/lists_Synapse/test_vol.txt").write_text("\n".join(test) + "\n")
    print(f"{len(train)} training slices, {len(test)} test volume(s) in {out}")


if __name__ == "__main__":
    main()
