//! `vmunet info`.

use crate::common::*;

#[test]
fn info_reports_the_paper_parameter_count() {
    let o = run(&["info", "--preset", "paper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("27,427,561"), "{}", stdout(&o));
    let o = run(&["info", "--preset", "paper", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["parameters"], 27_427_561);
}

#[test]
fn info_on_official_checkpoint() {
    let Some(sh) = shared() else { return };
    let ck = sh.join("fixtures/official-small/small_strong_model.pth");
    let o = run(&["info", "--checkpoint", s(&ck), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["parameters"], 2_169_403);
    assert_eq!(v["config"]["dims"], serde_json::json!([24, 48, 96, 192]));
    assert_eq!(v["stages"][0]["height"], 64);
}

/// `info --model` shows an ONNX file's input and the metadata recorded at export.
#[test]
fn info_on_an_onnx_file() {
    let model = vmunet_testdata::golden("tiny-chunked.onnx");
    let o = run(&["info", "--model", s(&model)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("chunked") && out.contains("input"), "{out}");
    let o = run(&["info", "--model", s(&model), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["bytes"].as_u64().unwrap() > 1000);
    let o = run(&[
        "info",
        "--model",
        s(&vmunet_testdata::golden("tiny-input.npy")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tiny-input.npy"), "{}", stderr(&o));
}
