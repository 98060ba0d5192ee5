//! Device profiles.

use crate::common::*;

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

/// `bench --profile` on a Jetson profile with PyPI's CPU-only ONNX Runtime: the providers the
/// profile asks for are skipped with their reason, the CPU runs, and the report gives latency,
/// precision, form and peak memory against the profile's budget (table and JSON).
#[test]
fn bench_with_a_jetson_profile_reports_the_fallback_and_the_memory_budget() {
    if ort_lib().is_none() {
        return;
    }
    let root = vmunet_testdata::repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let model = vmunet_testdata::golden("tiny-chunked.onnx");
    let o = run(&[
        "bench",
        "--model",
        s(&model),
        "--profile",
        s(&root.join("devices/jetson-orin-nano.toml")),
        "--runs",
        "2",
        "--warmup",
        "0",
        "--json",
        s(&json),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    eprintln!("{out}");
    assert!(out.contains("profile Jetson Orin Nano"), "{out}");
    assert!(
        out.contains("provider: CPU (profile asks for TensorRT > CUDA > CPU)"),
        "{out}"
    );
    assert!(
        out.contains("TensorRT unavailable") && out.contains("CUDA unavailable"),
        "{out}"
    );
    assert!(
        out.contains("precision: profile fp16, model fp32; model form: chunked (16)"),
        "{out}"
    );
    assert!(out.contains("of a 2048 MiB budget: within budget"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p = &v["profile"];
    assert_eq!(p["provider"], "CPU");
    assert_eq!(p["memory_budget_mib"], 2048);
    assert_eq!(p["verdict"], "within budget");
    assert!(p["peak_mib"].as_f64().unwrap() > 1.0);
    assert!(p["p95_s"].as_f64().unwrap() >= p["p50_s"].as_f64().unwrap());
    assert_eq!(v["rows"][0]["provider"], "CPU");
}
