"""The aarch64 (Jetson) wheel under qemu-user, run by `make test-wheel-aarch64` with Debian's
arm64 CPython: it imports, its scan kernels are NEON, the golden models' logits in tract are
within 1e-5, and the built-in model's masks equal the x86 `vmunet infer` masks in REF.

usage: python aarch64_check.py REPO SHARED REF_DIR (sys.path must hold the wheel and numpy)"""

import glob
import os
import sys

import numpy as np
from PIL import Image

import vmunet

repo, shared, ref = sys.argv[1:4]
print("vmunet", vmunet.__version__, "from", vmunet.__file__, "scan kernels", vmunet.SCAN_KERNELS)
assert vmunet.SCAN_KERNELS == "neon", vmunet.SCAN_KERNELS
g = os.path.join(repo, "onnx", "golden")
x = np.load(os.path.join(g, "tiny-input.npy"))
want = np.load(os.path.join(g, "tiny-logits.npy"))
for form in ("scan", "chunked", "custom"):
    y = vmunet.Session(os.path.join(g, f"tiny-{form}.onnx")).run(x)
    diff = float(np.abs(y - want).max())
    print(f"golden tiny-{form} in tract on aarch64: max|diff| {diff:.2e}")
    assert diff <= 1e-5, (form, diff)
seg = vmunet.Segmenter()
masks = sorted(glob.glob(os.path.join(ref, "*_mask.png")))
assert masks, f"no reference masks in {ref}"
for p in masks:
    stem = os.path.basename(p)[: -len("_mask.png")]
    mask, _ = seg.segment(os.path.join(shared, "data", "isic2017", "val", "images", stem + ".jpg"))
    assert np.array_equal(mask * 255, np.asarray(Image.open(p))), stem
print(f"masks of {len(masks)} images equal the x86 vmunet infer masks")
