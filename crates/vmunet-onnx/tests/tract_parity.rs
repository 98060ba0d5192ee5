//! The exported standard-op graph, run in tract, against the official PyTorch logits.

use std::path::PathBuf;

use tract_onnx::prelude::*;
use vmunet_model::{checkpoint, CpuBackend};
use vmunet_onnx::{export, write, ExportOptions};

fn fixtures() -> Option<PathBuf> {
    let root = std::env::var_os("VMUNET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = root.join("fixtures/official-small");
    if dir.join("small_strong_model.pth").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIP: official fixtures not found at {}", dir.display());
        None
    }
}

fn run_tract(path: &std::path::Path, input: &vmunet_data::Array) -> Vec<f32> {
    let shape: Vec<usize> = input.shape.clone();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact(shape.clone()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = Tensor::from_shape(&shape, &input.data).unwrap();
    let out = model.run(tvec!(x.into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn small_strong_in_tract_matches_official() {
    let Some(dir) = fixtures() else { return };
    let (model, info) =
        checkpoint::load::<CpuBackend>(&dir.join("small_strong_model.pth"), &Default::default())
            .unwrap();
    let proto = export(&model, &info.config, &ExportOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("small_strong.onnx");
    write(&proto, &path).unwrap();
    for suffix in ["", "_b2"] {
        let input =
            vmunet_data::read_npy(&dir.join(format!("small_strong_input{suffix}.npy"))).unwrap();
        let want =
            vmunet_data::read_npy(&dir.join(format!("small_strong_logits{suffix}.npy"))).unwrap();
        let got = run_tract(&path, &input);
        assert_eq!(got.len(), want.data.len());
        let d = got
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("tract small_strong{suffix}: max|diff| {d:.3e}");
        assert!(d <= 5e-4, "tract small_strong{suffix}: max|diff| {d}");
    }
}

/// The reference ONNX checker (full check) and ONNX Runtime CPU, through the test virtual
/// environment the Makefile builds (`VMUNET_PYTHON`).
#[test]
fn onnx_checker_and_onnxruntime_accept_the_export() {
    let Some(dir) = fixtures() else { return };
    let Some(python) =
        std::env::var_os("VMUNET_PYTHON").filter(|p| std::path::Path::new(p).is_file())
    else {
        eprintln!("SKIP: VMUNET_PYTHON is not set (run through `make test`, which installs onnx and onnxruntime)");
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/check_model.py");
    let (model, info) =
        checkpoint::load::<CpuBackend>(&dir.join("small_strong_model.pth"), &Default::default())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("small_strong.onnx");
    write(&path_proto(&model, &info.config), &path).unwrap();
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&path)
        .arg(dir.join("small_strong_input_b2.npy"))
        .arg(dir.join("small_strong_logits_b2.npy"))
        .arg("5e-4")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("onnx.checker: OK"), "{text}");
}

fn path_proto(
    model: &vmunet_model::VmUnet<CpuBackend>,
    cfg: &vmunet_model::VmUnetConfig,
) -> tract_onnx::pb::ModelProto {
    export(model, cfg, &ExportOptions::default()).unwrap()
}
