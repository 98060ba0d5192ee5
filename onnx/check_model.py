"""Reference checks for an exported VM-UNet ONNX file (used by the test suite).

usage: check_model.py [--custom-ops LIB.so] [--time N] MODEL.onnx [INPUT.npy EXPECTED.npy TOLERANCE]

1. onnx.checker.check_model(full_check=True): the reference ONNX checker with shape inference.
2. With INPUT/EXPECTED: run the model in ONNX Runtime (CPU) and print max |diff|; exit 1 when it
   exceeds TOLERANCE. A TOLERANCE written `rX` is relative: max |diff| / max |expected| <= X.
   float16 models (compressed without --keep-io-fp32) get a float16 input; the output is
   compared in float32.
3. --custom-ops LIB.so: register a custom-op library first (`libvmunet_ort_ops.so` runs models
   exported with `--scan custom`), as `SessionOptions.register_custom_ops_library` does for any
   stock ONNX Runtime user.
4. --time N: after the check, run the model N more times and print the median and p95 latency.
"""
import sys
import time

import numpy as np
import onnx


def main() -> int:
    args = sys.argv[1:]
    custom_ops, runs = None, 0
    while args and args[0].startswith("--"):
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--custom-ops":
            custom_ops = value
        elif flag == "--time":
            runs = int(value)
        else:
            print(f"unknown option {flag}", file=sys.stderr)
            return 2
    sys.argv = [sys.argv[0]] + args
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
        so = ort.SessionOptions()
        if custom_ops:
            so.register_custom_ops_library(custom_ops)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        if inp.type == "tensor(float16)":
            x = x.astype(np.float16)
        (got,) = sess.run(None, {inp.name: x})
        got = got.astype(np.float32)
        diff = float(np.abs(got - want).max())
        if relative:
            diff /= float(np.abs(want).max())
        kind = "relative max|diff|" if relative else "max|diff|"
        lib = f", custom ops {custom_ops}" if custom_ops else ""
        print(f"onnxruntime {ort.__version__} CPU ({inp.type}{lib}): {kind} {diff:.3e} (tolerance {tol:g})")
        if runs > 0:
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                sess.run(None, {inp.name: x})
                times.append(time.perf_counter() - t)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"latency: median {times[len(times) // 2] * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms over {runs} runs")
        if not diff <= tol:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
