//! `vmunet eval` on an exported model and on a plain `images/` + `masks/` folder.

use std::path::Path;

use crate::common::*;

fn metrics(json: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

/// The golden checkpoint in burn and its exports in tract and ONNX Runtime are scored by the
/// same evaluation on a plain folder (the `val` split of a generated set holds `images/` and
/// `masks/` directly): the same pooled metrics.
#[test]
fn eval_scores_an_onnx_model_like_its_checkpoint_on_a_plain_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    let o = run(&[
        "synth-isic",
        "--out",
        s(&data),
        "--train",
        "1",
        "--val",
        "6",
        "--size",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = data.join("val");
    let golden = vmunet_testdata::golden("tiny.bpk");
    let ck_json = tmp.path().join("ck.json");
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&golden),
        "--data",
        s(&plain),
        "--size",
        "64",
        "--json",
        s(&ck_json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("| images | mIoU | DSC"),
        "{}",
        stdout(&o)
    );
    let want = metrics(&ck_json);
    assert_eq!(want["images"], 6);
    let mut runtimes = vec!["tract"];
    if ort_lib().is_some() {
        runtimes.push("ort");
    }
    for (form, rt) in [("scan", "tract"), ("custom", "tract"), ("custom", "ort")] {
        if !runtimes.contains(&rt) {
            continue;
        }
        let model = vmunet_testdata::golden(&format!("tiny-{form}.onnx"));
        let json = tmp.path().join(format!("{form}-{rt}.json"));
        let o = run(&[
            "eval",
            "--model",
            s(&model),
            "--runtime",
            rt,
            "--data",
            s(&plain),
            "--json",
            s(&json),
        ]);
        assert!(o.status.success(), "{form} in {rt}: {}", stderr(&o));
        let got = metrics(&json);
        assert_eq!(got["images"], 6);
        for k in ["miou", "dsc", "acc", "sen", "spe", "loss"] {
            let (g, w) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
            assert!(
                (g - w).abs() < 1e-3,
                "{form} in {rt}: {k} {g} vs checkpoint {w}"
            );
        }
        assert!(got["model"]
            .as_str()
            .unwrap()
            .contains(&format!("tiny-{form}.onnx")));
    }
    // A fixed-size export refuses another size; a folder with neither layout is named.
    let model = vmunet_testdata::golden("tiny-scan.onnx");
    let o = run(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&plain),
        "--size",
        "96",
    ]);
    assert!(!o.status.success());
    let o = run(&["eval", "--model", s(&model), "--data", s(tmp.path())]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(s(tmp.path())), "{}", stderr(&o));
}
