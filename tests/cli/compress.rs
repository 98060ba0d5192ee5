//! `vmunet compress`: fp16 and int8 models that run in tract, ONNX Runtime and stock Python
//! ONNX Runtime; int8 masks against float32 on real images; the refusals.

use std::path::{Path, PathBuf};

use crate::common::*;

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    let m = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |d, (a, b)| d.max((a - b).abs()))
        / m
}

/// `vmunet export` of checkpoint `ck` in scan form `form` to `out`.
fn export_form(ck: &Path, form: &str, out: &Path) {
    let o = run(&[
        "export",
        "--checkpoint",
        s(ck),
        "--scan",
        form,
        "-o",
        s(out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn compress(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn l2_rel(got: &[f32], want: &[f32]) -> f32 {
    let (mut d, mut n) = (0f64, 0f64);
    for (a, b) in got.iter().zip(want) {
        d += ((a - b) as f64).powi(2);
        n += (*b as f64).powi(2);
    }
    (d / n).sqrt() as f32
}

/// fp16 against the official float32 logits: on `small` (near-initial weights) max |diff|
/// within 1e-2 of max |logit|; on `small_strong` (random weights that make every branch
/// matter, and amplify rounding) the error's norm within 1e-2 of the logits' norm.
#[test]
fn fp16_of_the_official_small_model_is_within_1e_2_in_every_runtime() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let ort = ort_lib().is_some();
    let py = python();
    let mut runtimes = vec!["tract"];
    if ort {
        runtimes.push("ort");
    }
    for prefix in ["small", "small_strong"] {
        let ck = fx.join(format!("{prefix}_model.pth"));
        let input = fx.join(format!("{prefix}_input.npy"));
        let logits = fx.join(format!("{prefix}_logits.npy"));
        let want = vmunet_data::read_npy(&logits).unwrap().data;
        for form in ["custom", "chunked"] {
            let fp32 = tmp.path().join(format!("{prefix}-{form}.onnx"));
            export_form(&ck, form, &fp32);
            let half = tmp.path().join(format!("{prefix}-{form}-fp16.onnx"));
            let text = compress(&["compress", "fp16", "--model", s(&fp32), "-o", s(&half)]);
            assert!(text.contains("kept float32 by policy"), "{text}");
            let y = tmp.path().join("y.npy");
            for rt in &runtimes {
                let got = forward(&half, rt, &input, &y);
                let (m, l2) = (max_rel(&got, &want), l2_rel(&got, &want));
                eprintln!("{prefix} {form} fp16 {rt}: relative max|diff| {m:.3e}, norm {l2:.3e}");
                let err = if prefix == "small" { m } else { l2 };
                assert!(err <= 1e-2, "{prefix} {form} fp16 {rt}: {err}");
            }
            if let (Some(py), "chunked", "small") = (&py, form, prefix) {
                python_check(py, &half, &input, &logits, "r1e-2", None);
            }
            let o = run(&["info", "--model", s(&half)]);
            assert!(o.status.success());
            let info = stdout(&o);
            assert!(
                info.contains("precision:    fp16") && info.contains("history:"),
                "{info}"
            );
        }
    }
}

/// int8 in both forms, calibrated on real images, runs in tract, ONNX Runtime and stock
/// Python ONNX Runtime (the accuracy test is on the trained reference model below: these
/// weights are random).
#[test]
fn int8_of_the_official_small_model_runs_in_every_runtime() {
    let Some(sh) = shared() else { return };
    let Some(isic) = vmunet_testdata::shared_data("isic2017", "int8 calibration") else {
        return;
    };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let ck = fx.join("small_strong_model.pth");
    let input = fx.join("small_strong_input.npy");
    let logits = fx.join("small_strong_logits.npy");
    let want = vmunet_data::read_npy(&logits).unwrap().data;
    let mut runtimes = vec!["tract"];
    if ort_lib().is_some() {
        runtimes.push("ort");
    }
    let py = python();
    for form in ["custom", "chunked"] {
        let fp32 = tmp.path().join(format!("{form}.onnx"));
        export_form(&ck, form, &fp32);
        let y = tmp.path().join("y.npy");
        for format in ["qdq", "qoperator"] {
            let q = tmp.path().join(format!("{form}-{format}.onnx"));
            let text = compress(&[
                "compress",
                "int8",
                "--model",
                s(&fp32),
                "--calib",
                s(&isic),
                "--calib-count",
                "4",
                "--format",
                format,
                "-o",
                s(&q),
            ]);
            assert!(text.contains("nodes quantised"), "{text}");
            for rt in &runtimes {
                let got = forward(&q, rt, &input, &y);
                assert!(got.iter().all(|v| v.is_finite()));
                let l2 = l2_rel(&got, &want);
                eprintln!(
                    "{form} {format} {rt}: relative norm of the error {l2:.3e} (random weights)"
                );
            }
            if let (Some(py), "chunked") = (&py, form) {
                python_check(py, &q, &input, &logits, "r1e6", None);
            }
            let info = stdout(&run(&["info", "--model", s(&q)]));
            assert!(
                info.contains("precision:    int8")
                    && info.contains(&format!("format            {format}")),
                "{info}"
            );
        }
    }
}

fn masks(dir: &Path) -> Vec<(String, image::GrayImage)> {
    let mut v: Vec<(String, image::GrayImage)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_mask.png"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                image::open(&p).unwrap().to_luma8(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn agreement(a: &[(String, image::GrayImage)], b: &[(String, image::GrayImage)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut same, mut all) = (0usize, 0usize);
    for ((na, ma), (nb, mb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        for (x, y) in ma.pixels().zip(mb.pixels()) {
            same += usize::from((x.0[0] > 127) == (y.0[0] > 127));
            all += 1;
        }
    }
    same as f64 / all as f64
}

#[test]
fn int8_masks_of_the_reference_model_agree_with_float32_on_validation_images() {
    let Some(isic) = vmunet_testdata::shared_data("isic2017", "int8 mask agreement") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ck = vmunet_testdata::repo_root().join("models/isic2017-16-128.bpk");
    let fp32 = tmp.path().join("ref.onnx");
    export_form(&ck, "custom", &fp32);
    // 24 validation images, spread over the set.
    let mut val: Vec<PathBuf> = std::fs::read_dir(isic.join("val/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    val.sort();
    let step = (val.len() / 24).max(1);
    let picked: Vec<String> = val
        .iter()
        .step_by(step)
        .take(24)
        .map(|p| s(p).to_string())
        .collect();
    let infer = |model: &Path, runtime: &str, out: &Path| {
        let mut args = vec![
            "infer",
            "--model",
            s(model),
            "--runtime",
            runtime,
            "--out",
            s(out),
        ];
        args.extend(picked.iter().map(String::as_str));
        let o = run(&args);
        assert!(o.status.success(), "{}: {}", model.display(), stderr(&o));
        masks(out)
    };
    let ort = ort_lib().is_some();
    let base = infer(&fp32, "tract", &tmp.path().join("fp32"));
    assert_eq!(base.len(), picked.len());
    let mut cases = vec![("qoperator", "tract")];
    if ort {
        cases.push(("qdq", "ort"));
    }
    for (format, runtime) in cases {
        let q = tmp.path().join(format!("ref-{format}.onnx"));
        compress(&[
            "compress",
            "int8",
            "--model",
            s(&fp32),
            "--calib",
            s(&isic.join("train/images")),
            "--calib-count",
            "16",
            "--format",
            format,
            "-o",
            s(&q),
        ]);
        let got = infer(&q, runtime, &tmp.path().join(format));
        let a = agreement(&base, &got);
        eprintln!(
            "int8 {format} in {runtime}: mask agreement {:.4} %",
            a * 100.0
        );
        assert!(a >= 0.99, "int8 {format} in {runtime}: {a}");
    }
    let half = tmp.path().join("ref-fp16.onnx");
    compress(&["compress", "fp16", "--model", s(&fp32), "-o", s(&half)]);
    let a = agreement(&base, &infer(&half, "tract", &tmp.path().join("fp16")));
    eprintln!("fp16 in tract: mask agreement {:.4} %", a * 100.0);
    assert!(a >= 0.995, "fp16: {a}");
}

#[test]
fn compress_bad_inputs_fail_cleanly_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = vmunet_testdata::golden("tiny-custom.onnx");
    let m = s(&model).to_string();
    let out = tmp.path().join("out.onnx");
    let o_ = s(&out).to_string();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("scan.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let good = tmp.path().join("good");
    std::fs::create_dir(&good).unwrap();
    image::RgbImage::from_pixel(48, 40, image::Rgb([200, 120, 90]))
        .save(good.join("a.png"))
        .unwrap();
    let quantised = tmp.path().join("q.onnx");
    compress(&[
        "compress",
        "int8",
        "--model",
        &m,
        "--calib",
        s(&good),
        "-o",
        s(&quantised),
    ]);
    let half = tmp.path().join("h.onnx");
    compress(&["compress", "fp16", "--model", &m, "-o", s(&half)]);
    let nano = vmunet_testdata::repo_root().join("devices/jetson-orin-nano.toml");
    let nope = tmp.path().join("nope");
    let missing = tmp.path().join("missing.onnx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "int8",
                "--model",
                &m,
                "--calib",
                s(&good),
                "--exclude",
                "no_such_node*",
            ],
            "`no_such_node*` matches no node",
        ),
        (
            vec!["fp16", "--model", &m, "--keep-fp32", "layers.9.*"],
            "`layers.9.*` matches no node",
        ),
        (
            vec!["int8", "--model", &m, "--calib", s(&empty)],
            "no images",
        ),
        (
            vec!["int8", "--model", &m, "--calib", s(&broken)],
            "scan.png",
        ),
        (vec!["int8", "--model", &m, "--calib", s(&nope)], "nope"),
        (vec!["int8", "--model", &m], "--calib"),
        (
            vec!["int8", "--model", s(&quantised), "--calib", s(&good)],
            "already quantised",
        ),
        (vec!["fp16", "--model", s(&half)], "already fp16"),
        (
            vec!["int8", "--model", s(&half), "--dynamic"],
            "already fp16",
        ),
        (
            vec![
                "int8",
                "--model",
                &m,
                "--calib",
                s(&good),
                "--profile",
                s(&nano),
            ],
            "runs the chunked form",
        ),
        (
            vec!["int8", "--model", &m, "--calib", s(&good), "--method", "kl"],
            "unknown calibration method",
        ),
        (
            vec!["int8", "--model", s(&missing), "--dynamic"],
            "missing.onnx",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["compress"];
        full.extend(args.iter().copied());
        full.extend(["-o", &o_]);
        let o = run(&full);
        let err = stderr(&o);
        assert!(!o.status.success(), "{full:?} succeeded");
        assert!(err.contains(want), "{full:?}: {err}");
        assert!(!err.contains("panicked"), "{full:?}: {err}");
        assert!(!out.exists(), "{full:?} left {}", out.display());
    }
}

/// A pruned checkpoint has the smaller shapes, loads, trains a step (`train --init`),
/// exports and runs; the pruning ratio is checked.
#[test]
fn pruned_checkpoint_shrinks_loads_trains_exports_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("small.bpk");
    let o = run(&["init", "--preset", "small", "--seed", "3", "-o", s(&ck)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pruned = tmp.path().join("pruned.bpk");
    // Bad ratios: clear errors, nothing written.
    for bad in ["0", "1", "1.5", "-0.2"] {
        let ratio = format!("--ratio={bad}");
        let o = run(&[
            "compress",
            "prune",
            "--checkpoint",
            s(&ck),
            &ratio,
            "-o",
            s(&pruned),
        ]);
        assert!(!o.status.success(), "--ratio {bad} succeeded");
        assert!(stderr(&o).contains("outside (0, 1)"), "{}", stderr(&o));
        assert!(!pruned.exists());
    }
    let o = run(&[
        "compress",
        "prune",
        "--checkpoint",
        s(&ck),
        "--ratio",
        "0.5",
        "--state-ratio",
        "0.25",
        "--json",
        "-o",
        s(&pruned),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (before, after) = (
        report["params"][0].as_u64().unwrap(),
        report["params"][1].as_u64().unwrap(),
    );
    assert_eq!(before, 2_169_403);
    assert!(after as f64 <= 0.5 * before as f64, "{after} of {before}");
    // The file has the smaller shapes and loads with them.
    let o = run(&["info", "--checkpoint", s(&pruned), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["parameters"].as_u64(), Some(after));
    let widths = info["config"]["block_widths"]
        .as_array()
        .expect("block widths")
        .clone();
    assert_eq!(widths.len(), 15);
    for (w, b) in widths.iter().zip(report["blocks"].as_array().unwrap()) {
        assert_eq!(w["d_inner"], b["d_inner"][1]);
        assert_eq!(w["d_state"].as_u64(), Some(12));
        assert!(w["d_inner"].as_u64().unwrap() < b["d_inner"][0].as_u64().unwrap());
    }
    // Trains a step from the pruned weights, keeping the pruned architecture.
    let data = tmp.path().join("data");
    let o = run(&[
        "synth-isic",
        "--out",
        s(&data),
        "--train",
        "4",
        "--val",
        "2",
        "--size",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = tmp.path().join("run");
    let o = run(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&runs),
        "--init",
        s(&pruned),
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--image-size",
        "64",
        "--dims",
        "24,48,96,192",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["info", "--checkpoint", s(&runs.join("last.bpk")), "--json"]);
    let trained: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(trained["parameters"].as_u64(), Some(after));
    // Exports (custom scan) and runs in tract.
    let onnx = tmp.path().join("pruned.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&pruned),
        "--scan",
        "custom",
        "--size",
        "64",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = tmp.path().join("x.npy");
    let data: Vec<f32> = (0..3 * 64 * 64).map(|i| (i % 251) as f32).collect();
    vmunet_data::write_npy(&x, &[1, 3, 64, 64], &data).unwrap();
    let y = forward(&onnx, "tract", &x, &tmp.path().join("y.npy"));
    let yb = tmp.path().join("yb.npy");
    let o = run(&[
        "forward",
        "--checkpoint",
        s(&pruned),
        "--input",
        s(&x),
        "--output",
        s(&yb),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = vmunet_data::read_npy(&yb).unwrap().data;
    let d = y
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 1e-3, "pruned export vs burn: {d}");
}

/// `compress report` measures every form in one run and writes Markdown, JSON and a chart.
#[test]
fn report_measures_every_form_side_by_side() {
    let Some(isic) = vmunet_testdata::shared_data("isic2017", "compression report") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ck = vmunet_testdata::repo_root().join("models/isic2017-16-128.bpk");
    let pruned = tmp.path().join("pruned.bpk");
    compress(&[
        "compress",
        "prune",
        "--checkpoint",
        s(&ck),
        "--ratio",
        "0.5",
        "-o",
        s(&pruned),
    ]);
    let out = tmp.path().join("report");
    let text = compress(&[
        "compress",
        "report",
        "--checkpoint",
        s(&ck),
        "--pruned",
        s(&pruned),
        "--data",
        s(&isic),
        "--calib-count",
        "2",
        "--runs",
        "2",
        "--max-images",
        "6",
        "--parity-images",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(text.contains("| int8-qdq |"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "fp32",
            "fp16",
            "int8-qdq",
            "int8-qoperator",
            "pruned",
            "pruned-int8-qdq",
            "pruned-int8-qoperator"
        ]
    );
    let fp32 = &rows[0];
    assert_eq!(fp32["parity_mask_agreement"].as_f64(), Some(1.0));
    for r in rows {
        let dsc = r["dsc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&dsc) && dsc > 0.3, "{r}");
        assert!(r["gmacs"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["latency"][0]["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(std::path::Path::new(r["file"].as_str().unwrap()).is_file());
    }
    // Smaller files and fewer multiply-adds where they must be.
    let bytes = |i: usize| rows[i]["bytes"].as_u64().unwrap();
    assert!(bytes(1) < bytes(0) && bytes(2) < bytes(1) && bytes(4) < bytes(0));
    assert!(rows[4]["gmacs"].as_f64() < rows[0]["gmacs"].as_f64());
    assert!(rows[4]["parameters"].as_u64() < rows[0]["parameters"].as_u64());
    let png = image::open(out.join("report.png")).unwrap();
    assert!(png.width() > 300 && png.height() > 200);
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("| model | file MB |"));
}

/// `compress sensitivity` ranks every Conv/MatMul, most sensitive first, and says which the
/// defaults keep float.
#[test]
fn sensitivity_ranks_every_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    let model = vmunet_testdata::golden("tiny-custom.onnx");
    let calib = tmp.path().join("calib");
    std::fs::create_dir(&calib).unwrap();
    for i in 0..3u8 {
        image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, 60 * i])
        })
        .save(calib.join(format!("{i}.png")))
        .unwrap();
    }
    let json = tmp.path().join("s.json");
    let text = compress(&[
        "compress",
        "sensitivity",
        "--model",
        s(&model),
        "--calib",
        s(&calib),
        "--top",
        "5",
        "--json",
        s(&json),
    ]);
    assert!(
        text.contains("rank") && text.contains("more; --top N"),
        "{text}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let m = vmunet_onnx_ir::Model::read(&model).unwrap();
    let candidates = m
        .graph
        .nodes()
        .iter()
        .filter(|n| {
            matches!(n.op_type(), "Conv" | "MatMul")
                && m.graph.initializer_proto(&n.input[1]).is_some_and(|t| {
                    (n.op_type() == "Conv" && t.dims.len() == 4) || t.dims.len() == 2
                })
        })
        .count();
    assert_eq!(rows.len(), candidates);
    let errs: Vec<f64> = rows
        .iter()
        .map(|r| r["mean_abs_error"].as_f64().unwrap())
        .collect();
    assert!(
        errs.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {errs:?}"
    );
    assert!(errs[0] > 0.0);
    assert!(rows.iter().any(|r| r["default_excluded"]
        .as_str()
        .is_some_and(|w| w.contains("x_proj"))));
}
