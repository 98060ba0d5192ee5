//! `libvmunet_ort_ops.so`: the custom scan operator loaded by stock Python ONNX Runtime
//! (`SessionOptions.register_custom_ops_library`), on the golden custom-form model and on a
//! paper-size export against the `vmunet` runtime; bad inputs come back as Python errors.

use std::path::PathBuf;

use crate::common::*;

/// The library built beside the binary (`VMUNET_ORT_OPS` overrides).
fn ort_ops_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("VMUNET_ORT_OPS") {
        return p.into();
    }
    let p = bin().parent().unwrap().join("libvmunet_ort_ops.so");
    assert!(
        p.is_file(),
        "{} not built: run `cargo build -p vmunet-ort-ops` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

#[test]
fn golden_custom_model_runs_in_stock_onnxruntime_with_the_library() {
    let Some(py) = python() else { return };
    let lib = ort_ops_lib();
    let g = vmunet_testdata::golden;
    let text = python_check(
        &py,
        &g("tiny-custom.onnx"),
        &g("tiny-input.npy"),
        &g("tiny-logits.npy"),
        "1e-4",
        Some(&lib),
    );
    assert!(text.contains("custom ops"), "{text}");
}

#[test]
fn paper_size_custom_export_matches_the_vmunet_runtime_in_stock_onnxruntime() {
    let Some(py) = python() else { return };
    let lib = ort_ops_lib();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("paper-custom.onnx");
    let o = run(&[
        "export",
        "--preset",
        "paper",
        "--scan",
        "custom",
        "--size",
        "256",
        "-o",
        s(&model),
    ]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    let input = dir.path().join("x.npy");
    let x: Vec<f32> = (0..3 * 256 * 256)
        .map(|i| ((i * 7919) % 256) as f32)
        .collect();
    vmunet_data::write_npy(&input, &[1, 3, 256, 256], &x).unwrap();
    let logits = dir.path().join("tract.npy");
    let want = forward(&model, "tract", &input, &logits);
    assert!(want.iter().all(|v| v.is_finite()));
    python_check(&py, &model, &input, &logits, "r1e-4", Some(&lib));
}

/// A one-node model: a good call gives `u`'s shape; a bad shape is an ONNX Runtime error
/// naming the operator, not a crash.
#[test]
fn bad_inputs_are_errors_in_python_not_crashes() {
    let Some(py) = python() else { return };
    let lib = ort_ops_lib();
    const SCRIPT: &str = r#"
import sys
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

names = ["u", "delta", "x_dbl", "A", "D", "delta_bias"]
node = helper.make_node("SelectiveScan", names, ["y"], domain="ai.vmunet")
graph = helper.make_graph(
    [node], "one_scan",
    [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.vmunet", 1)])
model.ir_version = 8
so = ort.SessionOptions()
so.register_custom_ops_library(sys.argv[1])
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
n, h, w, d, s, r = 1, 2, 3, 8, 4, 1
good = {
    "u": rng.standard_normal((n, h, w, d), dtype=np.float32),
    "delta": rng.standard_normal((n, 4, h * w, d), dtype=np.float32),
    "x_dbl": rng.standard_normal((n, h * w, 4, r + 2 * s), dtype=np.float32),
    "A": -np.exp(rng.standard_normal((4 * d, s), dtype=np.float32)),
    "D": rng.standard_normal(4 * d, dtype=np.float32),
    "delta_bias": rng.standard_normal(4 * d, dtype=np.float32),
}
(y,) = sess.run(None, good)
assert y.shape == (n, h, w, d) and np.isfinite(y).all(), y.shape
print("good call:", y.shape)
bad = dict(good, delta=good["delta"][:, :, :-1, :])
try:
    sess.run(None, bad)
    print("bad call: no error")
except Exception as e:
    print("bad call:", e)
"#;
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&lib)
        .output()
        .unwrap();
    let text = all_output(&out);
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("good call: (1, 2, 3, 8)"), "{text}");
    assert!(
        text.contains("bad call:") && text.contains("SelectiveScan") && text.contains("delta"),
        "{text}"
    );
}
