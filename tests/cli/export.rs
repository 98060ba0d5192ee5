//! `vmunet export`.

use crate::common::*;

#[test]
fn export_then_forward_in_tract_matches_official() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("model.onnx");
    let ck = fx.join("small_strong_model.pth");
    let o = run(&["export", "--checkpoint", s(&ck), "-o", s(&onnx)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("opset 17"), "{}", stdout(&o));
    // The export names its source checkpoint by content.
    let meta = vmunet_runtime::ModelFile::read(&onnx).unwrap().metadata;
    let sha = meta.source_sha256.as_deref().expect("sha256 metadata");
    assert_eq!(sha.len(), 64);
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(meta.output_activation.map(|a| a.as_str()), Some("sigmoid"));
    let cfg: serde_json::Value =
        serde_json::from_str(meta.config.as_deref().expect("config metadata")).unwrap();
    assert_eq!(cfg["dims"], serde_json::json!([24, 48, 96, 192]));
    let out = tmp.path().join("y.npy");
    let input = fx.join("small_strong_input.npy");
    let o = run(&[
        "forward",
        "--model",
        s(&onnx),
        "--runtime",
        "tract",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("tract (CPU)"), "{}", stderr(&o));
    let got = vmunet_data::read_npy(&out).unwrap();
    let want = vmunet_data::read_npy(&fx.join("small_strong_logits.npy")).unwrap();
    let d = got
        .data
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d <= 5e-4, "max|diff| {d}");

    // Bad models and inputs: clear errors naming the file, nothing written.
    let out2 = tmp.path().join("never.npy");
    let bytes = std::fs::read(&onnx).unwrap();
    let cut = tmp.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let text = tmp.path().join("text.onnx");
    std::fs::write(&text, "definitely not protobuf").unwrap();
    for (model, needle) in [(&cut, "cut.onnx"), (&text, "text.onnx")] {
        let o = run(&[
            "forward",
            "--model",
            s(model),
            "--input",
            s(&input),
            "--output",
            s(&out2),
        ]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(needle) && err.contains("not a valid ONNX model"),
            "{err}"
        );
    }
    let small = tmp.path().join("small.npy");
    vmunet_data::write_npy(&small, &[1, 3, 64, 64], &vec![0.0; 3 * 64 * 64]).unwrap();
    let o = run(&[
        "forward",
        "--model",
        s(&onnx),
        "--input",
        s(&small),
        "--output",
        s(&out2),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("does not fit the model input"),
        "{}",
        stderr(&o)
    );
    assert!(!out2.exists());
    let o = run(&[
        "export",
        "--preset",
        "small",
        "-o",
        s(&out2),
        "--size",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("multiples of 32"), "{}", stderr(&o));
    let o = run(&[
        "export",
        "--preset",
        "small",
        "-o",
        s(&out2),
        "--opset",
        "13",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("opset 13"), "{}", stderr(&o));
}

/// The model built into the binary (`models/isic2017-16-128.onnx`, `vmunet_embedded`) is the
/// export of the shipped checkpoint, byte for byte: `make models/isic2017-16-128.onnx` remakes
/// it when the exporter changes.
#[test]
fn the_built_in_model_is_the_export_of_the_shipped_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = vmunet_testdata::repo_root();
    let out = dir.path().join("ref.onnx");
    // From the repository root, as `make models/isic2017-16-128.onnx` runs it: the metadata
    // records the checkpoint's path as given.
    let o = std::process::Command::new(bin())
        .current_dir(&root)
        .args([
            "export",
            "--checkpoint",
            "models/isic2017-16-128.bpk",
            "--class-names",
            "lesion",
            "--scan",
            "custom",
            "-o",
            s(&out),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all_output(&o));
    let fresh = std::fs::read(&out).unwrap();
    let shipped = std::fs::read(root.join("models/isic2017-16-128.onnx")).unwrap();
    assert!(
        fresh == shipped,
        "models/isic2017-16-128.onnx is stale: run `make models/isic2017-16-128.onnx`"
    );
}
