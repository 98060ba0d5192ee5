//! `vmunet forward` in burn, tract and ONNX Runtime.

use std::path::Path;
use std::process::Command;

use crate::common::*;

#[test]
fn forward_matches_official_logits_and_probabilities() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let (ck, input) = (
        fx.join("small_strong_model.safetensors"),
        fx.join("small_strong_input_b2.npy"),
    );
    for (flag, want) in [
        (None, "small_strong_logits_b2.npy"),
        (Some("--probabilities"), "small_strong_output_b2.npy"),
    ] {
        let out = tmp.path().join("y.npy");
        let mut args = vec![
            "forward",
            "--checkpoint",
            s(&ck),
            "--input",
            s(&input),
            "--output",
            s(&out),
        ];
        args.extend(flag);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = vmunet_data::read_npy(&out).unwrap();
        let want = vmunet_data::read_npy(&fx.join(want)).unwrap();
        assert_eq!(got.shape, want.shape);
        let d = got
            .data
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d <= 5e-4, "{flag:?}: max|diff| {d}");
    }
}

#[test]
fn forward_rejects_bad_inputs_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.npy");
    let odd = tmp.path().join("odd.npy");
    vmunet_data::write_npy(&odd, &[1, 3, 100, 64], &vec![0.0; 3 * 100 * 64]).unwrap();
    let flat = tmp.path().join("flat.npy");
    vmunet_data::write_npy(&flat, &[3, 64, 64], &vec![0.0; 3 * 64 * 64]).unwrap();
    let junk = tmp.path().join("junk.npy");
    std::fs::write(&junk, "nope").unwrap();
    let cases: [(&Path, &[&str]); 4] = [
        (&odd, &["odd.npy", "multiples of 32"]),
        (&flat, &["flat.npy", "4-D"]),
        (&junk, &["junk.npy", "not a .npy"]),
        (&tmp.path().join("absent.npy"), &["absent.npy"]),
    ];
    for (input, needles) in cases {
        let o = run(&[
            "forward",
            "--preset",
            "small",
            "--input",
            s(input),
            "--output",
            s(&out),
        ]);
        assert!(!o.status.success(), "{} was accepted", input.display());
        let err = stderr(&o);
        for n in needles {
            assert!(err.contains(n), "missing `{n}` in: {err}");
        }
        assert!(!out.exists(), "output written despite the error");
    }
    // A bad checkpoint is named too.
    let ck = tmp.path().join("weights.pth");
    std::fs::write(&ck, "not weights").unwrap();
    let o = run(&[
        "forward",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&odd),
        "--output",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("weights.pth"), "{}", stderr(&o));
}

/// ONNX Runtime (CPU) through `ort` with the library from the onnxruntime wheel.
#[test]
fn forward_in_onnxruntime_matches_official() {
    let Some(sh) = shared() else { return };
    let Some(lib) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| Path::new(p).is_file()) else {
        eprintln!("SKIP: ORT_DYLIB_PATH is not set (run through `make test`, which installs libonnxruntime)");
        return;
    };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("model.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&fx.join("small_strong_model.pth")),
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("y.npy");
    let input = fx.join("small_strong_input_b2.npy");
    let o = run(&[
        "forward",
        "--model",
        s(&onnx),
        "--runtime",
        "ort",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("onnxruntime (CPU)"), "{}", stderr(&o));
    let got = vmunet_data::read_npy(&out).unwrap();
    let want = vmunet_data::read_npy(&fx.join("small_strong_logits_b2.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    let d = got
        .data
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("ort small_strong_b2: max|diff| {d:.3e}");
    assert!(d <= 5e-4, "max|diff| {d}");
    let _ = lib;
    // The same through a device profile.
    let profile = vmunet_testdata::repo_root().join("devices/x86-cpu.toml");
    let o = run(&[
        "forward",
        "--model",
        s(&onnx),
        "--profile",
        s(&profile),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("onnxruntime (CPU)"), "{}", stderr(&o));
    // A missing library is a clear error that says how to fix it.
    let o = Command::new(bin())
        .args([
            "forward",
            "--model",
            s(&onnx),
            "--runtime",
            "ort",
            "--input",
            s(&input),
            "--output",
            s(&tmp.path().join("z.npy")),
        ])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/libonnxruntime.so") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(!tmp.path().join("z.npy").exists());
}
