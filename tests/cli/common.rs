//! Helpers shared by the end-to-end tests: the binary, its output, where test data is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `vmunet` binary built beside this test (`VMUNET_BIN` overrides).
pub fn bin() -> PathBuf {
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

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn vmunet")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout then stderr of a finished process, as text.
pub fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn ort_lib() -> Option<std::ffi::OsString> {
    let lib = std::env::var_os("ORT_DYLIB_PATH").filter(|p| Path::new(p).is_file());
    if lib.is_none() {
        eprintln!("SKIP (ONNX Runtime part): ORT_DYLIB_PATH is not set (run through `make test`)");
    }
    lib
}

/// A narrow model at 64x64 so a training run takes seconds.
pub fn write_train_toml(dir: &Path, data: &Path, epochs: usize) -> PathBuf {
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

pub fn epochs_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0) as usize
}

/// The shared folder beside the checkout (official fixtures, ISIC data), or `None` after a
/// `SKIP:` line (see `vmunet_testdata`).
pub fn shared() -> Option<PathBuf> {
    vmunet_testdata::shared("vmunet end-to-end test")
}

/// `vmunet forward` of `model` in `runtime` on `input`, written to `out`; the logits.
pub fn forward(model: &Path, runtime: &str, input: &Path, out: &Path) -> Vec<f32> {
    let o = run(&[
        "forward",
        "--model",
        s(model),
        "--runtime",
        runtime,
        "--input",
        s(input),
        "--output",
        s(out),
    ]);
    assert!(
        o.status.success(),
        "{runtime} {}: {}",
        model.display(),
        stderr(&o)
    );
    vmunet_data::read_npy(out).unwrap().data
}

/// The test Python (`VMUNET_PYTHON`, with onnx and onnxruntime), or a SKIP message.
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("VMUNET_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if p.is_none() {
        eprintln!("SKIP (Python part): VMUNET_PYTHON is not set (run through `make test`)");
    }
    p
}

/// onnx.checker (full) and stock ONNX Runtime from Python; `tol` as check_model.py reads it;
/// `custom_ops`: a custom-op library to register first. Returns the script's output.
pub fn python_check(
    py: &Path,
    model: &Path,
    input: &Path,
    want: &Path,
    tol: &str,
    custom_ops: Option<&Path>,
) -> String {
    let script = vmunet_testdata::repo_root().join("onnx/check_model.py");
    let mut cmd = std::process::Command::new(py);
    cmd.arg(script);
    if let Some(lib) = custom_ops {
        cmd.arg("--custom-ops").arg(lib);
    }
    let out = cmd
        .arg(model)
        .arg(input)
        .arg(want)
        .arg(tol)
        .output()
        .unwrap();
    let text = all_output(&out);
    eprintln!("{}: {text}", model.display());
    assert!(out.status.success(), "{}: {text}", model.display());
    assert!(text.contains("onnx.checker: OK"), "{text}");
    text
}

/// Waits until `cond` holds (or panics after `secs`).
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
