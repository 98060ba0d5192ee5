//! `vmunet bundle` / `vmunet verify-bundle` / `vmunet bundle --triton`: the folder a technician
//! copies to the device, checked intact and after tampering (changed byte, missing file, extra
//! file), its run script, and a Triton repository parsed by Triton's own schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The custom-op library built beside the binary.
fn ort_ops() -> PathBuf {
    let p = bin().parent().unwrap().join("libvmunet_ort_ops.so");
    assert!(
        p.is_file(),
        "{} not built: run `cargo build -p vmunet-ort-ops` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

/// `verify-bundle --files-only` fails and names the problem.
fn assert_verify_fails(dir: &Path, problem: &str) {
    let o = verify(dir, &["--files-only"]);
    assert!(
        !o.status.success(),
        "verify-bundle passed; expected `{problem}`"
    );
    assert!(stderr(&o).contains(problem), "{}", stderr(&o));
}

/// `onnx/check_triton.py REPO`.
fn check_triton(py: &Path, repo: &Path) -> std::process::Output {
    Command::new(py)
        .arg(vmunet_testdata::repo_root().join("onnx/check_triton.py"))
        .arg(repo)
        .output()
        .unwrap()
}

fn verify(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify-bundle", s(dir)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn a_bundle_verifies_intact_and_names_every_tampered_file() {
    let g = vmunet_testdata::golden;
    let root = vmunet_testdata::repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orin-nano");
    // The Jetson Orin Nano profile (ONNX Runtime; here its CPU provider when ORT_DYLIB_PATH is
    // set), or the tract profile without ONNX Runtime.
    let profile = if ort_lib().is_some() {
        root.join("devices/jetson-orin-nano.toml")
    } else {
        root.join("devices/cpu-tract.toml")
    };
    let o = run(&[
        "bundle",
        "--profile",
        s(&profile),
        "--model",
        s(&g("tiny-chunked.onnx")),
        "--model",
        s(&g("tiny-custom.onnx")),
        "--ort-ops",
        s(&ort_ops()),
        "-o",
        s(&dir),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    for f in [
        "bin/vmunet",
        "lib/libvmunet_ort_ops.so",
        "models/tiny-chunked.onnx",
        "models/tiny-custom.onnx",
        "profile.toml",
        "run.sh",
        "vmunet.service",
        "README.md",
        "bundle.json",
        "MANIFEST.sha256",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from the bundle");
    }
    // Nothing but the bundle was left beside it.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.sha256")).unwrap();
    assert_eq!(manifest.lines().count(), 9, "{manifest}");
    // sha256sum reads the manifest too (a device without vmunet can check it).
    let o = Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all_output(&o));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(info["models"][1]["custom_op"], true);
    assert_eq!(info["arch"], std::env::consts::ARCH);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("systemctl") && readme.contains("sha256sum -c"),
        "{readme}"
    );
    if profile.ends_with("jetson-orin-nano.toml") {
        assert!(
            readme.contains("JetPack 6") && readme.contains("TensorRT 10.3"),
            "{readme}"
        );
    }
    let unit = std::fs::read_to_string(dir.join("vmunet.service")).unwrap();
    assert!(unit.contains("ExecStart=@BUNDLE@/run.sh serve"), "{unit}");

    // The bundle's own script runs the bundle's own binary: files and both models pass.
    let o = Command::new(dir.join("run.sh"))
        .arg("verify")
        .output()
        .unwrap();
    let text = all_output(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("OK (9 files match MANIFEST.sha256)"),
        "{text}"
    );
    assert_eq!(text.matches("one forward pass").count(), 2, "{text}");
    // The device benchmark from the run script: the latency table next to the service's logs.
    let o = Command::new(dir.join("run.sh"))
        .args(["bench", "--runs", "2", "--warmup", "0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all_output(&o));
    let logs: Vec<String> = std::fs::read_dir(dir.join("var/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let table = logs
        .iter()
        .find(|n| n.ends_with(".txt"))
        .expect("bench table");
    assert!(logs.iter().any(|n| n.ends_with(".json")), "{logs:?}");
    let text = std::fs::read_to_string(dir.join("var/logs").join(table)).unwrap();
    assert!(
        text.contains("| p50 s |") && text.contains("tiny-chunked.onnx"),
        "{text}"
    );
    // The service's data under var/ is not part of the bundle.
    std::fs::create_dir_all(dir.join("var/out")).unwrap();
    std::fs::write(dir.join("var/out/x_mask.png"), b"data").unwrap();
    assert!(verify(&dir, &["--files-only"]).status.success());

    // A changed byte.
    let model = dir.join("models/tiny-chunked.onnx");
    let original = std::fs::read(&model).unwrap();
    let mut changed = original.clone();
    let i = changed.len() / 2;
    changed[i] ^= 0x01;
    std::fs::write(&model, &changed).unwrap();
    assert_verify_fails(&dir, "models/tiny-chunked.onnx: changed");
    std::fs::write(&model, &original).unwrap();
    // A missing file.
    let lib = dir.join("lib/libvmunet_ort_ops.so");
    let lib_bytes = std::fs::read(&lib).unwrap();
    std::fs::remove_file(&lib).unwrap();
    assert_verify_fails(&dir, "lib/libvmunet_ort_ops.so: missing");
    std::fs::write(&lib, &lib_bytes).unwrap();
    // An extra file.
    std::fs::write(dir.join("models/other.onnx"), b"not from the bundler").unwrap();
    assert_verify_fails(&dir, "models/other.onnx: extra file");
    std::fs::remove_file(dir.join("models/other.onnx")).unwrap();
    assert!(verify(&dir, &["--no-run"]).status.success());

    // An existing bundle is not replaced without --force; nothing is touched.
    let o = run(&[
        "bundle",
        "--profile",
        s(&profile),
        "--model",
        s(&g("tiny-chunked.onnx")),
        "-o",
        s(&dir),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(verify(&dir, &["--files-only"]).status.success());
}

#[test]
fn bad_bundle_inputs_are_refused_before_anything_is_written() {
    let g = vmunet_testdata::golden;
    let root = vmunet_testdata::repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let profile = root.join("devices/cpu-tract.toml");
    let bad_model = tmp.path().join("broken.onnx");
    std::fs::write(&bad_model, b"\x08\x07 not a model").unwrap();
    let not_elf = tmp.path().join("vmunet");
    std::fs::write(&not_elf, "#!/bin/sh\necho I am not the binary you want\n").unwrap();
    let out = tmp.path().join("bundle");
    for (args, want) in [
        (
            vec!["--model", s(&bad_model)],
            "broken.onnx: not a valid ONNX model",
        ),
        (
            vec!["--model", s(&g("tiny-scan.onnx")), "--binary", s(&not_elf)],
            "not an ELF",
        ),
        (
            // A custom-scan model needs the library; there is none beside this binary.
            vec![
                "--model",
                s(&g("tiny-custom.onnx")),
                "--binary",
                s(&bin_copy(tmp.path())),
            ],
            "libvmunet_ort_ops.so",
        ),
    ] {
        let mut full = vec!["bundle", "--profile", s(&profile), "-o", s(&out)];
        full.extend(args);
        let o = run(&full);
        assert!(!o.status.success(), "{full:?}");
        assert!(stderr(&o).contains(want), "{full:?}: {}", stderr(&o));
        assert!(!out.exists(), "{full:?} left {}", out.display());
    }
    let o = run(&["verify-bundle", s(tmp.path())]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("MANIFEST.sha256: missing"),
        "{}",
        stderr(&o)
    );
}

/// A small ELF standing in for a binary in a folder without the custom-op library.
fn bin_copy(dir: &Path) -> PathBuf {
    let d = dir.join("solo");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("vmunet");
    std::fs::copy(ort_ops(), &p).unwrap();
    p
}

#[test]
fn triton_repository_parses_with_tritons_schema_and_opens_in_stock_onnxruntime() {
    let Some(py) = python() else { return };
    let g = vmunet_testdata::golden;
    let root = vmunet_testdata::repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // A custom-scan model with the Jetson profile (TensorRT accelerator, custom-op library)
    // and a standard-op one for a CPU server.
    let o = run(&[
        "bundle",
        "--triton",
        "--model",
        s(&g("tiny-custom.onnx")),
        "--profile",
        s(&root.join("devices/jetson-orin-nano.toml")),
        "--ort-ops",
        s(&ort_ops()),
        "-o",
        s(&repo),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let o = run(&[
        "bundle",
        "--triton",
        "--model",
        s(&g("tiny-scan.onnx")),
        "--name",
        "vmunet_cpu",
        "--max-batch",
        "4",
        "-o",
        s(&repo),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let cfg = std::fs::read_to_string(repo.join("tiny-custom/config.pbtxt")).unwrap();
    assert!(cfg.contains("precision_mode\" value: \"FP16\""), "{cfg}");
    assert!(
        cfg.contains("op_library_filename: [ \"/models/tiny-custom/libvmunet_ort_ops.so\" ]"),
        "{cfg}"
    );
    let out = check_triton(&py, &repo);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("tiny-custom: config.pbtxt parses with Triton's schema"),
        "{text}"
    );
    assert!(text.contains("vmunet_cpu: config.pbtxt parses"), "{text}");
    assert!(text.contains("max_batch_size 4"), "{text}");
    // The schema check is not a rubber stamp: a field Triton does not know is refused.
    let bad = repo.join("vmunet_cpu/config.pbtxt");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, format!("{text}dynamic_batchin {{ }}\n")).unwrap();
    let out = check_triton(&py, &repo);
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("dynamic_batchin"),
        "{}",
        all_output(&out)
    );
}
