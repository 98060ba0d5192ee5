"""Reference checks for an exported VM-UNet ONNX file (used by the test suite).

usage: check_model.py MODEL.onnx [INPUT.npy EXPECTED.npy TOLERANCE]

1. onnx.checker.check_model(full_check=True): the reference ONNX checker with shape inference.
2. With INPUT/EXPECTED: run the model in ONNX Runtime (CPU) and print max |diff|; exit 1 when it
   exceeds TOLERANCE. A TOLERANCE written `rX` is relative: max |diff| / max |expected| <= X.
   float16 models (compressed without --keep-io-fp32) get a float16 input; the output is
   compared in float32.
"""
import sys

import numpy as np
import onnx


def main() -> int:
    path = sys.argv[1]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print(f"onnx.checker: OK ({path}, opset {model.opset_import[0].version})")
    if len(sys.argv) >= 5:
        import onnxruntime as ort

        x = np.load(sys.argv[2]).astype(np.float32)
        want = np.load(sys.argv[3]).astype(np.float32)
        relative = sys.argv[4].startswith("r")
        tol = float(sys.argv[4].lstrip("r"))
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        if inp.type == "tensor(float16)":
            x = x.astype(np.float16)
        (got,) = sess.run(None, {inp.name: x})
        got = got.astype(np.float32)
        diff = float(np.abs(got - want).max())
        if relative:
            diff /= float(np.abs(want).max())
        kind = "relative max|diff|" if relative else "max|diff|"
        print(f"onnxruntime {ort.__version__} CPU ({inp.type}): {kind} {diff:.3e} (tolerance {tol:g})")
        if not diff <= tol:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
