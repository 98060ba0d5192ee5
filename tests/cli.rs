//! End-to-end: the `vmunet` binary driven as a user drives it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `vmunet` binary built beside this test (`VMUNET_BIN` overrides).
fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VMUNET_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("vmunet");
    assert!(
        p.is_file(),
        "{} not built: run `cargo build -p vmunet-cli` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn vmunet")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shared() -> Option<PathBuf> {
    let root = std::env::var_os("VMUNET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if root
        .join("fixtures/official-small/small_strong_model.pth")
        .is_file()
    {
        Some(root)
    } else {
        eprintln!(
            "SKIP: ../shared not found at {} (set VMUNET_SHARED)",
            root.display()
        );
        None
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_on_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["info", "--help"],
        vec!["forward", "--help"],
        vec!["segment", "--help"],
        vec!["bench", "--help"],
        vec!["export", "--help"],
        vec!["parity", "--help"],
        vec!["init", "--help"],
        vec!["train", "--help"],
        vec!["eval", "--help"],
        vec!["synth-isic", "--help"],
    ] {
        let o = run(&cmd);
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage"), "{cmd:?}");
    }
}

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

#[test]
fn segment_writes_masks_at_original_size() {
    let Some(sh) = shared() else { return };
    let imgs = sh.join("data/isic2017-fullres/images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&imgs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("masks");
    let ck = sh.join("fixtures/official-small/small_strong_model.pth");
    let o = run(&[
        "segment",
        "--checkpoint",
        s(&ck),
        s(&files[0]),
        s(&files[1]),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in &files[..2] {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let (w, h) = image::image_dimensions(f).unwrap();
        let mask = image::open(out.join(format!("{stem}_mask.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(mask.dimensions(), (w, h));
        assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        let ov = image::open(out.join(format!("{stem}_overlay.png"))).unwrap();
        assert_eq!((ov.width(), ov.height()), (w, h));
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        5,
        "only masks, overlays and timing.csv"
    );
    let csv = std::fs::read_to_string(out.join("timing.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("image,width,height,preprocess_ms,inference_ms"));
    assert!(lines[1].contains(files[0].file_name().unwrap().to_str().unwrap()));
}

#[test]
fn segment_bad_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let good = tmp.path().join("good.png");
    image::RgbImage::from_pixel(40, 30, image::Rgb([10, 20, 30]))
        .save(&good)
        .unwrap();
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 truncated").unwrap();
    let o = run(&[
        "segment",
        "--preset",
        "small",
        s(&good),
        s(&bad),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().count() == 0,
        "nothing written"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run(&["segment", "--preset", "small", s(&empty), "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no images"), "{}", stderr(&o));
    let o = run(&[
        "segment",
        "--preset",
        "small",
        s(&good),
        "--out",
        s(&out),
        "--size",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("multiples of 32"), "{}", stderr(&o));
}

#[test]
fn segment_a_generated_image_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("lesion.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        let d = ((x as f32 - 150.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
        if d < 50.0 {
            image::Rgb([90, 50, 40])
        } else {
            image::Rgb([220, 180, 160])
        }
    })
    .save(&img)
    .unwrap();
    let out = tmp.path().join("out");
    let o = run(&["segment", "--preset", "small", s(&img), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mask = image::open(out.join("lesion_mask.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (300, 200));
}

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
    assert_eq!(meta.source.as_deref(), Some(s(&ck)));
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
    let profile = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("devices/x86-cpu.toml");
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

#[test]
fn bad_device_profile_names_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let prof = tmp.path().join("board.toml");
    std::fs::write(
        &prof,
        "name = \"board\"\nruntime = \"ort\"\nproviders = [\"npu\"]\n",
    )
    .unwrap();
    let model = tmp.path().join("m.onnx");
    std::fs::write(&model, "x").unwrap();
    let input = tmp.path().join("x.npy");
    vmunet_data::write_npy(&input, &[1, 3, 32, 32], &vec![0.0; 3 * 32 * 32]).unwrap();
    let out = tmp.path().join("y.npy");
    let o = run(&[
        "forward",
        "--model",
        s(&model),
        "--profile",
        s(&prof),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("board.toml") && err.contains("npu"), "{err}");
    assert!(!out.exists());
}

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

#[test]
fn init_writes_a_loadable_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("small.bpk");
    let o = run(&["init", "--preset", "small", "--seed", "7", "-o", s(&ck)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["info", "--checkpoint", s(&ck), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["parameters"], 2_169_403);
    assert_eq!(v["format"], "burnpack");
    // Same seed, same weights: identical outputs (the files differ only in parameter ids).
    let again = tmp.path().join("again.bpk");
    assert!(
        run(&["init", "--preset", "small", "--seed", "7", "-o", s(&again)])
            .status
            .success()
    );
    let x = tmp.path().join("x.npy");
    let data: Vec<f32> = (0..3 * 32 * 32).map(|i| (i % 251) as f32).collect();
    vmunet_data::write_npy(&x, &[1, 3, 32, 32], &data).unwrap();
    let outs: Vec<Vec<f32>> = [&ck, &again]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let y = tmp.path().join(format!("y{i}.npy"));
            let o = run(&[
                "forward",
                "--checkpoint",
                s(c),
                "--input",
                s(&x),
                "--output",
                s(&y),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            vmunet_data::read_npy(&y).unwrap().data
        })
        .collect();
    assert_eq!(outs[0], outs[1]);
}

fn ort_lib() -> Option<std::ffi::OsString> {
    let lib = std::env::var_os("ORT_DYLIB_PATH").filter(|p| Path::new(p).is_file());
    if lib.is_none() {
        eprintln!("SKIP (ONNX Runtime part): ORT_DYLIB_PATH is not set (run through `make test`)");
    }
    lib
}

/// `infer` on a folder of real ISIC images with burn, tract and ONNX Runtime, on the standard
/// and the custom-op export: masks agree across runtimes, one CSV row per image.
#[test]
fn infer_a_folder_with_every_runtime() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let ck = fx.join("small_strong_model.pth");
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("images");
    std::fs::create_dir(&imgs).unwrap();
    let val = sh.join("data/isic2017/val/images");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&val)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for f in &names[..3] {
        std::fs::copy(f, imgs.join(f.file_name().unwrap())).unwrap();
    }
    let mut runs: Vec<(String, Vec<String>)> =
        vec![("burn".into(), vec!["--checkpoint".into(), s(&ck).into()])];
    for scan in ["scan", "custom"] {
        let onnx = tmp.path().join(format!("{scan}.onnx"));
        let o = run(&[
            "export",
            "--checkpoint",
            s(&ck),
            "--scan",
            scan,
            "-o",
            s(&onnx),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut runtimes = vec!["tract"];
        if ort_lib().is_some() {
            runtimes.push("ort");
        }
        for rt in runtimes {
            runs.push((
                format!("{rt}-{scan}"),
                vec![
                    "--model".into(),
                    s(&onnx).into(),
                    "--runtime".into(),
                    rt.into(),
                ],
            ));
        }
    }
    let mut masks: Vec<(String, Vec<image::GrayImage>)> = Vec::new();
    for (label, args) in &runs {
        let out = tmp.path().join(format!("out-{label}"));
        let mut argv: Vec<&str> = vec!["infer"];
        argv.extend(args.iter().map(String::as_str));
        argv.extend([s(&imgs), "--out", s(&out)]);
        let o = run(&argv);
        assert!(o.status.success(), "{label}: {}", stderr(&o));
        assert!(stdout(&o).contains("3 images with"), "{}", stdout(&o));
        let csv = std::fs::read_to_string(out.join("timing.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4, "{label}: {csv}");
        let ms: Vec<image::GrayImage> = names[..3]
            .iter()
            .map(|f| {
                let stem = f.file_stem().unwrap().to_str().unwrap();
                image::open(out.join(format!("{stem}_mask.png")))
                    .unwrap()
                    .to_luma8()
            })
            .collect();
        masks.push((label.clone(), ms));
    }
    let (_, reference) = &masks[0];
    for (label, ms) in &masks[1..] {
        for (a, b) in reference.iter().zip(ms) {
            let total = a.len() as f64;
            let same = a.pixels().zip(b.pixels()).filter(|(x, y)| x == y).count() as f64;
            eprintln!("{label}: mask agreement with burn {:.6}", same / total);
            assert!(same / total >= 0.999, "{label}: {}", same / total);
        }
    }
}

/// Bad model files, wrong sizes, undecodable images, empty folders and a missing
/// libonnxruntime: a clear error, a non-zero exit and an output folder left untouched.
#[test]
fn infer_bad_inputs_fail_cleanly_and_write_nothing() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([120, 80, 60]))
        .save(&good)
        .unwrap();
    let onnx = tmp.path().join("model64.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&fx.join("small_strong_model.pth")),
        "--size",
        "64",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&onnx).unwrap();
    let truncated = tmp.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let not_onnx = tmp.path().join("notes.onnx");
    std::fs::write(&not_onnx, "this is not a model").unwrap();
    let broken = tmp.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", s(&truncated), s(&good)], "truncated.onnx"),
        (vec!["--model", s(&not_onnx), s(&good)], "notes.onnx"),
        (
            vec!["--model", s(&onnx), "--size", "256", s(&good)],
            "fixed at 64x64",
        ),
        (vec!["--model", s(&onnx), s(&broken)], "broken.png"),
        (vec!["--model", s(&onnx), s(&empty)], "no images"),
        (
            vec!["--model", s(&onnx), "--runtime", "burn", s(&good)],
            "--checkpoint",
        ),
    ];
    for (args, needle) in cases {
        let mut argv = vec!["infer"];
        argv.extend(args);
        argv.extend(["--out", s(&out)]);
        let o = run(&argv);
        assert!(!o.status.success(), "{argv:?} succeeded");
        assert!(stderr(&o).contains(needle), "{argv:?}: {}", stderr(&o));
        assert!(!out.exists(), "{argv:?} created {}", out.display());
    }
    // A missing libonnxruntime.so says how to fix it.
    let o = Command::new(bin())
        .args([
            "infer",
            "--model",
            s(&onnx),
            "--runtime",
            "ort",
            s(&good),
            "--out",
            s(&out),
        ])
        .env(
            "ORT_DYLIB_PATH",
            tmp.path().join("nowhere/libonnxruntime.so"),
        )
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ORT_DYLIB_PATH"), "{}", stderr(&o));
    assert!(!out.exists());
    // The same fixed-size model runs a 64x64 input.
    let o = run(&["infer", "--model", s(&onnx), s(&good), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("good_mask.png").is_file());
}

/// A narrow model at 64x64 so a training run takes seconds.
fn write_train_toml(dir: &Path, data: &Path, epochs: usize) -> PathBuf {
    let p = dir.join("train.toml");
    std::fs::write(
        &p,
        format!(
            "data = \"{}\"\nepochs = {epochs}\nbatch_size = 4\nimage_size = 64\nt_max = 3\n\
             [model]\ndims = [8, 16, 32, 64]\nd_state = 4\n",
            data.display()
        ),
    )
    .unwrap();
    p
}

fn epochs_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0) as usize
}

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

    // The trained checkpoint goes straight to the export path.
    let onnx = dir.path().join("m.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&out.join("best.bpk")),
        "--size",
        "64",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(onnx.is_file());
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
