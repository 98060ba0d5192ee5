"""Reference checks for an exported VM-UNet ONNX file (used by the test suite).

usage: check_model.py MODEL.onnx [INPUT.npy EXPECTED.npy TOLERANCE]

1. onnx.checker.check_model(full_check=True): the reference ONNX checker with shape inference.
2. With INPUT/EXPECTED: run the model in ONNX Runtime (CPU) and print max |diff|; exit 1 when it
   exceeds TOLERANCE.
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
        want = np.load(sys.argv[3])
        tol = float(sys.argv[4])
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
        diff = float(np.abs(got - want).max())
        print(f"onnxruntime {ort.__version__} CPU: max|diff| {diff:.3e} (tolerance {tol:g})")
        if not diff <= tol:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
