//! `vmunet train` and `vmunet eval`.

use std::process::Command;

use crate::common::*;

#[test]
fn train_kill_resume_eval_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = run(&[
        "synth-isic",
        "--out",
        s(&data),
        "--train",
        "16",
        "--val",
        "4",
        "--size",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = write_train_toml(dir.path(), &data, 4);
    let out = dir.path().join("run");

    // Start, kill once the first epoch is committed, resume to the end.
    let mut child = Command::new(bin())
        .args(["train", "--config", s(&cfg), "--out", s(&out), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while epochs_done(&out) < 1 && t0.elapsed().as_secs() < 300 {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("training exited early: {st}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = epochs_done(&out);
    assert!((1..4).contains(&done), "killed after {done} epochs");
    // Starting again without --resume is refused and changes nothing.
    let o = run(&["train", "--config", s(&cfg), "--out", s(&out), "--quiet"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    assert_eq!(epochs_done(&out), done);
    let o = run(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--quiet",
        "--resume",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(epochs_done(&out), 4);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(stdout(&o).contains("epoch   4"), "{}", stdout(&o));
    for f in ["best.bpk", "last.bpk", "curves.png", "metrics.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // The paper's metrics as JSON fractions.
    let json = dir.path().join("eval.json");
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&out.join("best.bpk")),
        "--data",
        s(&data),
        "--size",
        "64",
        "--json",
        s(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("| images | mIoU | DSC |"),
        "{}",
        stdout(&o)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in ["miou", "dsc", "acc", "sen", "spe"] {
        let x = v[k].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(v["images"].as_u64(), Some(4));

    // The trained checkpoint goes straight to the export path, at the size it was trained at
    // (recorded in the checkpoint; no --size).
    let onnx = dir.path().join("m.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&out.join("best.bpk")),
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = vmunet_runtime::ModelFile::read(&onnx).unwrap();
    assert_eq!(
        file.input.dims[2..],
        [
            vmunet_runtime::ModelDim::Fixed(64),
            vmunet_runtime::ModelDim::Fixed(64)
        ],
        "{}",
        file.input
    );
}

#[test]
fn train_and_eval_bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let o = run(&[
        "train",
        "--data",
        s(&missing),
        "--out",
        s(&dir.path().join("r")),
        "--epochs",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-data"), "{}", stderr(&o));
    assert!(
        !dir.path().join("r").exists(),
        "a failed start wrote a run folder"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "epochz = 3\n").unwrap();
    let o = run(&["train", "--config", s(&bad)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bad.toml") && stderr(&o).contains("epochz"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "train",
        "--data",
        s(dir.path()),
        "--out",
        s(&dir.path().join("r2")),
        "--resume",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("state.json"), "{}", stderr(&o));
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&dir.path().join("none.bpk")),
        "--data",
        s(dir.path()),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("none.bpk"), "{}", stderr(&o));
}

#[test]
fn train_and_eval_on_synapse_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synapse");
    // TransUNet's layout, generated: train_npz/*.npz, test_vol_h5/*.npy.h5, lists.
    vmunet_data::write_synthetic_synapse(&data, 8, 2, 3, 64, 5).unwrap();
    let cfg = dir.path().join("synapse.toml");
    std::fs::write(
        &cfg,
        format!(
            "data = \"{}\"\nepochs = 1\nbatch_size = 4\nimage_size = 32\n\
             [model]\nnum_classes = 9\ndims = [8, 16, 32, 64]\nd_state = 4\n",
            data.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = run(&["train", "--config", s(&cfg), "--out", s(&out), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["dataset"], "synapse");
    // The checkpoint records the Synapse preprocessing; the export copies it, and
    // --preprocessing overrides it.
    let info = vmunet_model::checkpoint::inspect(&out.join("last.bpk")).unwrap();
    assert_eq!(
        info.preprocessing,
        Some(vmunet_onnx_ir::Preprocessing::Synapse)
    );
    let onnx = dir.path().join("syn.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&out.join("last.bpk")),
        "--size",
        "32",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("preprocessing: synapse"),
        "{}",
        stdout(&o)
    );
    let meta = vmunet_onnx_ir::Model::read(&onnx)
        .unwrap()
        .metadata()
        .unwrap();
    assert_eq!(
        meta.preprocessing,
        Some(vmunet_onnx_ir::Preprocessing::Synapse)
    );
    let o = run(&[
        "export",
        "--checkpoint",
        s(&out.join("last.bpk")),
        "--size",
        "32",
        "--preprocessing",
        "isic",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = vmunet_onnx_ir::Model::read(&onnx)
        .unwrap()
        .metadata()
        .unwrap();
    assert_eq!(
        meta.preprocessing,
        Some(vmunet_onnx_ir::Preprocessing::Isic)
    );
    assert!(state["history"][0]["val_loss"]
        .as_f64()
        .unwrap()
        .is_finite());

    let json = dir.path().join("eval.json");
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&out.join("last.bpk")),
        "--data",
        s(&data),
        "--size",
        "32",
        "--json",
        s(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("| organ | DSC | HD95 |"),
        "{}",
        stdout(&o)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["cases"].as_u64(), Some(2));
    let organs = v["organs"].as_object().unwrap();
    assert_eq!(organs.len(), 8);
    for (name, m) in organs {
        let (d, h) = (m["dsc"].as_f64().unwrap(), m["hd95"].as_f64().unwrap());
        assert!(
            (0.0..=1.0).contains(&d) && h >= 0.0 && h.is_finite(),
            "{name}: {d} {h}"
        );
    }
    // A one-class model is refused on Synapse with the reason.
    let o = run(&[
        "init",
        "--preset",
        "small",
        "-o",
        s(&dir.path().join("one.bpk")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&dir.path().join("one.bpk")),
        "--data",
        s(&data),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("1-class"), "{}", stderr(&o));
}

/// A short CPU run of a narrow VM-UNet on real ISIC 2017 images lowers the validation loss.
/// The data is a subset of `../shared/data/isic2017` (linked, not copied): 96 training and 32
/// validation pairs, 64x64, three epochs of 12 steps.
#[test]
fn training_on_real_isic_lowers_validation_loss() {
    let Some(root) = shared() else { return };
    let src = root.join("data/isic2017");
    if !src.join("train/images").is_dir() {
        eprintln!("SKIP: {} not found", src.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("isic-subset");
    for (split, count) in [("train", 96), ("val", 32)] {
        for kind in ["images", "masks"] {
            let from = src.join(split).join(kind);
            let to = data.join(split).join(kind);
            std::fs::create_dir_all(&to).unwrap();
            let mut names: Vec<_> = std::fs::read_dir(&from)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for name in names.into_iter().take(count) {
                std::os::unix::fs::symlink(from.join(&name), to.join(&name)).unwrap();
            }
        }
    }
    let out = dir.path().join("run");
    let o = run(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--dims",
        "8,16,32,64",
        "--image-size",
        "64",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let epochs = v.as_array().expect("metrics.json is a list of epochs");
    assert_eq!(epochs.len(), 3, "{v}");
    let val = |i: usize| epochs[i]["val_loss"].as_f64().expect("val_loss");
    let train = |i: usize| epochs[i]["train_loss"].as_f64().expect("train_loss");
    eprintln!(
        "val_loss {:.4} -> {:.4} -> {:.4}; train_loss {:.4} -> {:.4}; last DSC {}",
        val(0),
        val(1),
        val(2),
        train(0),
        train(2),
        epochs[2]["val"]["dsc"]
    );
    assert!(val(2) < val(0), "validation loss did not decrease: {v}");
    assert!(train(2) < train(0), "training loss did not decrease: {v}");
}
