//! `vmunet parity`.

use crate::common::*;

#[test]
fn parity_report_passes_and_fails_on_threshold() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("model.onnx");
    let ck = fx.join("small_strong_model.pth");
    let o = run(&["export", "--checkpoint", s(&ck), "-o", s(&onnx)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let images = sh.join("data/isic2017/val/images");
    let json = tmp.path().join("parity.json");
    let o = run(&[
        "parity",
        "--checkpoint",
        s(&ck),
        "--model",
        s(&onnx),
        "--images",
        s(&images),
        "--max-images",
        "2",
        "--random",
        "1",
        "--threshold",
        "5e-4",
        "--json",
        s(&json),
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("tract (CPU)"), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 3);
    let tract = &v["runtimes"][0];
    assert_eq!(tract["ran"], true);
    assert!(tract["max_abs_diff"].as_f64().unwrap() <= 5e-4);
    assert!(tract["min_dice"].as_f64().unwrap() > 0.99);
    // An impossible threshold fails with a non-zero exit.
    let o = run(&[
        "parity",
        "--checkpoint",
        s(&ck),
        "--model",
        s(&onnx),
        "--random",
        "1",
        "--threshold",
        "1e-12",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("parity failed"), "{}", stderr(&o));
}

/// Without a checkpoint, parity compares ONNX Runtime with tract on the file itself (what the
/// deployment build can do).
#[test]
fn parity_between_runtimes_without_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("p.json");
    let model = vmunet_testdata::golden("tiny-custom.onnx");
    let o = run(&[
        "parity",
        "--model",
        s(&model),
        "--random",
        "2",
        "--json",
        s(&json),
    ]);
    let v: serde_json::Value = if ort_lib().is_some() {
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
    } else {
        eprintln!("SKIP: no ONNX Runtime library (ORT_DYLIB_PATH)");
        return;
    };
    assert!(v["reference"].as_str().unwrap().contains("tract"), "{v}");
    let ort = &v["runtimes"][0];
    assert_eq!(ort["ran"], true);
    assert!(ort["max_abs_diff"].as_f64().unwrap() < 1e-4, "{v}");
}
