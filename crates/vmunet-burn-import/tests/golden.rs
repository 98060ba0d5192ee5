//! The burn code burn-import generated from each golden export reproduces the golden logits on
//! burn's ndarray backend, within the tolerance the runtimes meet on the same files.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};

type B = NdArray<f32>;

/// Same bound as tract and ONNX Runtime on the golden models (`vmunet-onnx/tests/golden.rs`).
const TOLERANCE: f32 = 1e-4;

fn golden_input() -> Tensor<B, 4> {
    let x = vmunet_data::read_npy(&vmunet_testdata::golden("tiny-input.npy")).unwrap();
    Tensor::from_data(TensorData::new(x.data, x.shape), &Default::default())
}

fn assert_golden(form: &str, y: Tensor<B, 4>) {
    let want = vmunet_data::read_npy(&vmunet_testdata::golden("tiny-logits.npy")).unwrap();
    assert_eq!(y.dims().to_vec(), want.shape, "tiny-{form}: output shape");
    let got = y.into_data().into_vec::<f32>().unwrap();
    let diff = got
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("tiny-{form} through burn-import: max |logit diff| {diff:.2e}");
    assert!(
        diff <= TOLERANCE,
        "tiny-{form} read back by burn-import differs from the golden logits by {diff}"
    );
}

#[cfg(burn_import_chunked)]
#[test]
fn chunked_export_read_back_by_burn_import_matches_golden_logits() {
    let model = vmunet_burn_import::chunked::Model::<B>::default();
    assert_golden("chunked", model.forward(golden_input()));
}

#[cfg(burn_import_scan)]
#[test]
fn scan_export_read_back_by_burn_import_matches_golden_logits() {
    let model = vmunet_burn_import::scan::Model::<B>::default();
    assert_golden("scan", model.forward(golden_input()));
}

/// The build step requires `chunked`; every form it could not read is explained in
/// `onnx/README.md` (which op, and why), so a new refusal cannot pass unnoticed.
#[test]
fn refused_forms_are_documented() {
    assert!(
        !vmunet_burn_import::REFUSED
            .iter()
            .any(|(form, _)| *form == "chunked"),
        "the chunked form must import"
    );
    let readme =
        std::fs::read_to_string(vmunet_testdata::repo_root().join("onnx/README.md")).unwrap();
    let section = readme
        .split("## burn-import")
        .nth(1)
        .expect("onnx/README.md has a `## burn-import` section");
    for (form, why) in vmunet_burn_import::REFUSED {
        eprintln!("burn-import refuses tiny-{form}.onnx: {why}");
        assert!(
            section.contains(&format!("`{form}`")),
            "onnx/README.md's burn-import section does not explain the `{form}` form ({why})"
        );
    }
}
