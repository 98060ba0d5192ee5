//! `vmunet bench`: the scan kernel against its bound, time per operator type, and ratios
//! against the official PyTorch model only from timings of the same run (`--peer`).

use crate::common::*;

/// A `tests/bench_peer.py` result for `shape`.
fn peer_json(dir: &std::path::Path, shape: [usize; 4]) -> std::path::PathBuf {
    let path = dir.join("peer.json");
    let v = serde_json::json!({
        "torch": "2.15.0", "threads": 2, "shape": shape, "parameters": 2169403,
        "machine": "test CPU, 2 CPUs", "date": "2026-12-02",
        "forward_s": 8.0, "forward_runs_s": [8.0], "no_scan_s": 0.5, "no_scan_runs_s": [0.5],
    });
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    path
}

/// With `--kernel --by-op --peer`: the kernel table (per stage shape, fraction of the bound),
/// each runtime's time per operator type with the custom scan among them, the split of the
/// forward into scan and the rest, and "vs PyTorch" ratios computed from the peer file, in
/// the table and the JSON. Without `--peer`, no ratio at all.
#[test]
fn bench_reports_kernel_ops_and_peer_ratios_from_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = peer_json(tmp.path(), [1, 3, 64, 64]);
    let json = tmp.path().join("bench.json");
    let o = run(&[
        "bench",
        "--preset",
        "small",
        "--size",
        "64",
        "--form",
        "custom",
        "--kernel",
        "--by-op",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--threads",
        "2",
        "--peer",
        s(&peer),
        "--json",
        s(&json),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    eprintln!("{out}");
    assert!(out.contains("vs PyTorch 2.15.0 (8.00 s)"), "{out}");
    assert!(out.contains("x faster |"), "{out}");
    assert!(out.contains("fraction of bound"), "{out}");
    assert!(
        out.contains("| encoder.0 + decoder.3 | 48 | 16x16 | 3 |"),
        "{out}"
    );
    assert!(
        out.contains("tract [custom]: time per operator type"),
        "{out}"
    );
    assert!(out.contains("| SelectiveScan | 15 |"), "{out}");
    assert!(out.contains("PyTorch without the scan 0.500 s"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let stages = v["kernel"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    for st in stages {
        let f = st["fraction_of_bound"].as_f64().unwrap();
        assert!(f > 0.0 && f.is_finite(), "{st}");
        let one = st["one_core"]["fraction_of_bound"].as_f64().unwrap();
        assert!(one > 0.0 && one.is_finite(), "{st}");
        assert!(
            st["one_core"]["best_seconds"].as_f64() <= st["one_core"]["seconds"].as_f64(),
            "{st}"
        );
        assert!(
            st["best_seconds"].as_f64() <= st["seconds"].as_f64(),
            "{st}"
        );
    }
    let rows = v["rows"].as_array().unwrap();
    let tract = rows.iter().find(|r| r["scan"] == "custom").unwrap();
    let ratio = tract["ratio_vs_pytorch"].as_f64().unwrap();
    assert!((ratio - tract["p50_s"].as_f64().unwrap() / 8.0).abs() < 1e-12);
    assert_eq!(v["peer"]["no_scan_s"], 0.5);
    let split = v["non_scan"].as_array().unwrap();
    assert!(!split.is_empty());
    let rest = split[0]["rest_s"].as_f64().unwrap();
    let fwd = split[0]["forward_s"].as_f64().unwrap();
    let scan = split[0]["scan_s"].as_f64().unwrap();
    assert!((fwd - scan - rest).abs() < 1e-12);
    let by_op = v["by_op"].as_array().unwrap();
    assert!(by_op.iter().any(|p| p["runtime"] == "tract"));
    if ort_lib().is_some() {
        let ort = by_op
            .iter()
            .find(|p| p["runtime"] == "onnxruntime")
            .unwrap();
        assert!(ort["ops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["op"] == "SelectiveScan"));
    }

    // No peer: no ratio column, no ratio in the JSON.
    let o = run(&[
        "bench",
        "--preset",
        "small",
        "--size",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--json",
        s(&json),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(!out.contains("PyTorch"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["rows"][0]["ratio_vs_pytorch"].is_null());
}

/// A peer file for another input shape gives no ratios (with a warning); a malformed one is an
/// error naming the file.
#[test]
fn bench_refuses_peer_timings_it_cannot_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = peer_json(tmp.path(), [1, 3, 256, 256]);
    let o = run(&[
        "bench",
        "--preset",
        "small",
        "--size",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--peer",
        s(&peer),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    assert!(stderr(&o).contains("peer timings are for input [1, 3, 256, 256]"));
    assert!(!stdout(&o).contains("faster"), "{}", stdout(&o));

    std::fs::write(&peer, "{\"torch\": 2").unwrap();
    let o = run(&[
        "bench",
        "--preset",
        "small",
        "--size",
        "64",
        "--runs",
        "1",
        "--peer",
        s(&peer),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("peer.json") && err.contains("bench_peer.py"),
        "{err}"
    );
}

/// `tests/bench_peer.py` refuses a folder that is not the official code, before importing
/// anything, with a clear message and exit code 2.
#[test]
fn bench_peer_script_names_a_wrong_official_folder() {
    let Some(py) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let script = vmunet_testdata::repo_root().join("tests/bench_peer.py");
    let o = std::process::Command::new(py)
        .arg(&script)
        .args([
            "--official",
            s(tmp.path()),
            "--out",
            s(&tmp.path().join("p.json")),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not a checkout of the official VM-UNet"),
        "{err}"
    );
    assert!(!tmp.path().join("p.json").exists());
}
