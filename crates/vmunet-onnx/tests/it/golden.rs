//! Golden models in `onnx/golden/`: a tiny VM-UNet checkpoint, its export in every scan
//! formulation, an input and burn's logits. The exporter must reproduce the files byte for byte
//! (an intended change re-blesses them: `VMUNET_BLESS=1 cargo test -p vmunet-onnx --test golden`
//! rewrites the `.onnx` files from the existing checkpoint; delete `tiny.bpk` first to draw a new
//! checkpoint, input and logits), and every runtime must run them. Needs nothing from `../shared`.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use vmunet_model::{checkpoint, CpuBackend, VmUnetConfig};
use vmunet_onnx::{export, ExportOptions, ScanForm};
use vmunet_runtime::{OrtOptions, OrtRuntime, Runtime, TractRuntime};

const SIZE: usize = 64;

fn dir() -> PathBuf {
    vmunet_testdata::repo_root().join("onnx/golden")
}

fn bless() -> bool {
    std::env::var_os("VMUNET_BLESS").is_some_and(|v| v == "1")
}

fn tiny() -> VmUnetConfig {
    VmUnetConfig::new()
        .with_dims(vec![8, 16, 32, 64])
        .with_depths(vec![1, 1, 1, 1])
        .with_depths_decoder(vec![1, 1, 1, 1])
        .with_d_state(4)
}

fn options(scan: ScanForm) -> ExportOptions {
    ExportOptions {
        height: SIZE,
        width: SIZE,
        scan,
        chunk: 16,
        ..Default::default()
    }
}

fn golden(scan: ScanForm) -> PathBuf {
    dir().join(format!("tiny-{scan}.onnx"))
}

/// tract, and ONNX Runtime when `ort`, on `path`.
fn runtimes(path: &Path, ort: bool) -> Vec<Box<dyn Runtime>> {
    let mut v: Vec<Box<dyn Runtime>> = vec![Box::new(TractRuntime::open(path).unwrap())];
    if ort {
        v.push(Box::new(
            OrtRuntime::open(path, &OrtOptions::default()).unwrap(),
        ));
    }
    v
}

/// Largest |a - b|.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn write_or_compare(path: &Path, bytes: &[u8]) {
    if bless() {
        std::fs::write(path, bytes).unwrap();
        return;
    }
    let want = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        want == bytes,
        "{} changed ({} bytes now, {} golden): if the change is intended, re-bless with \
         VMUNET_BLESS=1 cargo test -p vmunet-onnx --test golden",
        path.display(),
        bytes.len(),
        want.len()
    );
}

#[test]
fn the_exporter_reproduces_the_golden_models() {
    let d = dir();
    let ck = d.join("tiny.bpk");
    let device = Default::default();
    let fresh = bless() && !ck.is_file();
    if fresh {
        std::fs::create_dir_all(&d).unwrap();
        <CpuBackend as burn::tensor::backend::Backend>::seed(&device, 7);
        checkpoint::save(&tiny().init::<CpuBackend>(&device).unwrap(), &ck).unwrap();
        let n = 3 * SIZE * SIZE;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919 + 13) % 256) as f32).collect();
        vmunet_data::write_npy(&d.join("tiny-input.npy"), &[1, 3, SIZE, SIZE], &x).unwrap();
    }
    let (model, info) = checkpoint::load::<CpuBackend>(&ck, &device).unwrap();
    assert_eq!(info.config.dims, tiny().dims);
    for scan in ScanForm::ALL {
        let bytes = export(&model, &info.config, &options(scan))
            .unwrap()
            .to_bytes();
        write_or_compare(&golden(scan), &bytes);
    }
    let x = vmunet_data::read_npy(&d.join("tiny-input.npy")).unwrap();
    let y = model
        .forward(Tensor::from_data(
            TensorData::new(x.data, x.shape.clone()),
            &device,
        ))
        .unwrap();
    let shape = y.dims().to_vec();
    let y = y.into_data().into_vec::<f32>().unwrap();
    let logits = d.join("tiny-logits.npy");
    if fresh {
        vmunet_data::write_npy(&logits, &shape, &y).unwrap();
    }
    let want = vmunet_data::read_npy(&logits).unwrap();
    assert_eq!(want.shape, shape);
    let diff = max_diff(&y, &want.data);
    assert!(diff <= 1e-5, "burn drifted from the golden logits: {diff}");
}

#[test]
fn every_runtime_runs_the_golden_models() {
    let d = dir();
    let x = vmunet_data::read_npy(&d.join("tiny-input.npy")).unwrap();
    let want = vmunet_data::read_npy(&d.join("tiny-logits.npy")).unwrap();
    let ort = std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| Path::new(&p).is_file());
    if !ort {
        eprintln!("SKIP (ONNX Runtime part): ORT_DYLIB_PATH is not set (run through `make test`)");
    }
    for scan in ScanForm::ALL {
        let path = golden(scan);
        for mut rt in runtimes(&path, ort) {
            let y = rt.run(&x).unwrap();
            assert_eq!(y.shape, want.shape);
            let diff = max_diff(&y.data, &want.data);
            eprintln!(
                "golden tiny-{scan} in {}: max|diff| {diff:.2e}",
                rt.description()
            );
            assert!(diff <= 1e-4, "tiny-{scan} in {}: {diff}", rt.description());
        }
    }
}

/// The chunked scan written one direction and channel slice at a time (what paper-size exports
/// do to bound peak memory, forced here by a tiny `chunk_group_bytes`) computes the same logits
/// as the golden chunked model, in tract and ONNX Runtime.
#[test]
fn the_grouped_chunked_scan_matches_the_golden_logits() {
    let d = dir();
    let (model, info) =
        checkpoint::load::<CpuBackend>(&d.join("tiny.bpk"), &Default::default()).unwrap();
    let x = vmunet_data::read_npy(&d.join("tiny-input.npy")).unwrap();
    let want = vmunet_data::read_npy(&d.join("tiny-logits.npy")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let whole = export(&model, &info.config, &options(ScanForm::Chunked)).unwrap();
    for budget in [64 << 10, 16 << 10] {
        let opts = ExportOptions {
            chunk_group_bytes: budget,
            ..options(ScanForm::Chunked)
        };
        let m = export(&model, &info.config, &opts).unwrap();
        let nodes = |m: &vmunet_onnx::Model| m.graph.nodes().len();
        assert!(
            nodes(&m) > nodes(&whole),
            "budget {budget}: the scan was not split ({} nodes)",
            nodes(&m)
        );
        let path = tmp.path().join(format!("grouped-{budget}.onnx"));
        std::fs::write(&path, m.to_bytes()).unwrap();
        let ort = std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| Path::new(&p).is_file());
        for mut rt in runtimes(&path, ort) {
            let y = rt.run(&x).unwrap();
            assert_eq!(y.shape, want.shape);
            let diff = max_diff(&y.data, &want.data);
            eprintln!(
                "grouped chunked (budget {budget} B, {} nodes) in {}: max|diff| {diff:.2e}",
                nodes(&m),
                rt.description()
            );
            assert!(
                diff <= 1e-4,
                "budget {budget} in {}: {diff}",
                rt.description()
            );
        }
    }
}
