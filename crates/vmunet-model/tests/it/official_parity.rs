//! Parity with the official PyTorch VM-UNet on the `official-small` fixtures.

use std::collections::BTreeMap;

use crate::common::*;
use burn::tensor::Tensor;
use vmunet_model::{checkpoint, CpuBackend, Trace, VmUnet};
use vmunet_scan::{CpuScan, ReferenceScan, ScanDims, ScanInputs, SelectiveScan};

fn load(dir: &std::path::Path, file: &str) -> VmUnet<CpuBackend> {
    checkpoint::load::<CpuBackend>(&dir.join(file), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// Logits and probabilities for batch 1 and 2 within `tol`.
fn check_outputs(model: &VmUnet<CpuBackend>, dir: &std::path::Path, prefix: &str, tol: f32) {
    for suffix in ["", "_b2"] {
        let input = npy(dir, &format!("{prefix}_input{suffix}.npy"));
        let logits = npy(dir, &format!("{prefix}_logits{suffix}.npy"));
        let probs = npy(dir, &format!("{prefix}_output{suffix}.npy"));
        let y = model.forward(tensor4(&input)).unwrap();
        let p = model.activate(y.clone());
        let (dims, y) = to_vec(y);
        assert_eq!(dims, logits.shape);
        let d = max_abs_diff(&y, &logits.data);
        eprintln!("{prefix}{suffix}: logits max|diff| = {d:.3e} (tolerance {tol:.0e})");
        assert!(d <= tol, "{prefix}{suffix}: logits differ by {d}");
        let (_, p) = to_vec(p);
        let dp = max_abs_diff(&p, &probs.data);
        eprintln!("{prefix}{suffix}: probabilities max|diff| = {dp:.3e}");
        assert!(dp <= tol, "{prefix}{suffix}: probabilities differ by {dp}");
    }
}

#[test]
fn small_strong_pth_matches_official() {
    let Some(dir) = fixtures() else { return };
    let model = load(&dir, "small_strong_model.pth");
    check_outputs(&model, &dir, "small_strong", 5e-4);
}

#[test]
fn small_strong_safetensors_matches_official() {
    let Some(dir) = fixtures() else { return };
    let model = load(&dir, "small_strong_model.safetensors");
    check_outputs(&model, &dir, "small_strong", 5e-4);
}

#[test]
fn small_pth_matches_official() {
    let Some(dir) = fixtures() else { return };
    let model = load(&dir, "small_model.pth");
    check_outputs(&model, &dir, "small", 1e-4);
}

#[test]
fn every_intermediate_matches_official() {
    let Some(dir) = fixtures() else { return };
    let model = load(&dir, "small_strong_model.pth");
    let want = vmunet_data::read_npz(&dir.join("small_strong_intermediates.npz")).unwrap();
    let input = npy(&dir, "small_strong_input.npy");
    let mut got: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut sink = |key: &str, t: Tensor<CpuBackend, 4>| {
        got.insert(key.to_string(), to_vec(t));
    };
    model
        .forward_traced(tensor4(&input), &mut Trace::new(&mut sink))
        .unwrap();
    assert_eq!(want.len(), 65);
    for (key, arr) in &want {
        let path = &key[4..]; // "NNN_" prefix
        let (shape, data) = got
            .get(path)
            .unwrap_or_else(|| panic!("intermediate `{path}` was not produced"));
        assert_eq!(shape, &arr.shape, "{path}: shape");
        let d = max_abs_diff(data, &arr.data);
        assert!(d <= 5e-4, "{path}: max|diff| {d}");
    }
}

#[test]
fn scan_cases_match_official() {
    let Some(dir) = fixtures() else { return };
    let cases = vmunet_data::read_npz(&dir.join("small_strong_scan_cases.npz")).unwrap();
    let blocks: std::collections::BTreeSet<String> = cases
        .keys()
        .map(|k| k.split(".scan.").next().unwrap().to_string())
        .collect();
    assert_eq!(blocks.len(), 2);
    for block in blocks {
        let get = |n: &str| &cases[&format!("{block}.scan.{n}")];
        let (u, b) = (get("u"), get("B"));
        let dims = ScanDims {
            batch: u.shape[0],
            channels: u.shape[1],
            len: u.shape[2],
            d_state: b.shape[2],
            groups: b.shape[1],
        };
        let inputs = ScanInputs {
            dims,
            u: &u.data,
            delta: &get("delta").data,
            a: &get("A").data,
            b: &b.data,
            c: &get("C").data,
            d: &get("D").data,
            delta_bias: &get("delta_bias").data,
            delta_softplus: true,
        };
        let want = &get("out").data;
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for scan in [&ReferenceScan as &dyn SelectiveScan, &CpuScan] {
            let y = scan.forward(&inputs).unwrap();
            let d = max_abs_diff(&y, want);
            eprintln!(
                "{block} {}: max|diff| {d:.3e} (max |out| {scale:.3})",
                scan.name()
            );
            assert!(d <= 1e-4 * scale.max(1.0), "{block} {}: {d}", scan.name());
        }
    }
}
