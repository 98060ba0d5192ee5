//! Pins the rewriters' output: the SHA-256 of every compressed golden model (int8 QDQ and
//! QOperator, static and dynamic, a few option variants, and fp16), so a refactor of the
//! rewriters that changes one node name, node order or initializer shows up here.

use vmunet_compress::{
    quantize, to_fp16, ActivationType, CalibrationSet, Format, Fp16Options, Int8Options, Method,
};
use vmunet_data::Preprocess;
use vmunet_onnx_ir::Model;

/// SHA-256 of `model.to_bytes()` for each case, recorded from the rewriters before they were
/// split into files (int8.rs, fp16.rs); they pin the rewriters' output byte for byte. Only a
/// deliberate change of the rewrites may update them.
const PINNED: [(&str, &str); 16] = [
    (
        "scan/int8-qdq-static",
        "97cb7c3bfa2e4ecb772b644c8c769f858b03cfea1fe7f2736e21845c65798d90",
    ),
    (
        "scan/int8-qoperator-static",
        "9bee5717e03509974a7151f9b143480ad6088569f320b9a34cc6f9a26602f4a0",
    ),
    (
        "scan/int8-qdq-dynamic",
        "a9703ebfd04f5726e9a13caf25764a0e1699f5192d22381afa34145aed68bfc4",
    ),
    (
        "scan/int8-qoperator-dynamic",
        "f983af39cf3fd7ed4c9d69e86d5e8f7407ce33f60abf438e14b68a142ff57edf",
    ),
    (
        "scan/int8-qdq-entropy-u8-symmetric-all",
        "25db9916f0b68adaa8fbf7e5ecd3003792b4fbf8c25e7fb33cab18f853873799",
    ),
    (
        "scan/int8-qoperator-percentile-u8-all",
        "9f29a9baff051c48aaff9b53d353b840d76ce9873796605f350eae368e3eb70e",
    ),
    (
        "scan/fp16-default",
        "709d98469f432567c20ee87fb6e3939589c794cffb1af53a31a61b4d42a01c84",
    ),
    (
        "scan/fp16-io32-layernorm16-patterns",
        "9bd1b37367e56201a9538430db1f6e8d76ad082fd04c4dd52af05b3d0643f9a7",
    ),
    (
        "custom/int8-qdq-static",
        "12866d2cae20f2952c8ae3175697057e97168d0e4da2ec5236de91b9a0697c39",
    ),
    (
        "custom/int8-qoperator-static",
        "95af3ebcefb53cf80509ff591fd5bfdf9b46affeeaefa293fb0eb8d0262c1219",
    ),
    (
        "custom/int8-qdq-dynamic",
        "77c859cf3a88d0901121d60ba5b1e6551e958de38fd674eb47402301e63c4a38",
    ),
    (
        "custom/int8-qoperator-dynamic",
        "7de1ddbc69b21a8b4d9db799af8515b240d27ed6ebb2591378aac00afeef65aa",
    ),
    (
        "custom/int8-qdq-entropy-u8-symmetric-all",
        "8c09432d1fe06af12451d573f66d0a70ef8cda209d9fa901f0a854b23c746224",
    ),
    (
        "custom/int8-qoperator-percentile-u8-all",
        "6a14767e9c128924abd7994eb1020cd9e037b63e9fb3d953a6aafc6774015d2a",
    ),
    (
        "custom/fp16-default",
        "38d4fd3aae426499996990616fda1d973d10a9c5ebbbca38156905f33a97318d",
    ),
    (
        "custom/fp16-io32-layernorm16-patterns",
        "5cf7fc04ec4bd3833d7faad8bb520b6c6cd4e20f153bd8adca5bca5cd78485b2",
    ),
];

fn golden(form: &str) -> Model {
    Model::read(&vmunet_testdata::golden(&format!("tiny-{form}.onnx"))).unwrap()
}

fn calib() -> CalibrationSet {
    CalibrationSet::synthetic(
        3,
        &Preprocess {
            height: 64,
            width: 64,
            channels: 3,
        },
    )
}

/// The int8 cases: a name and the options.
fn int8_cases() -> Vec<(&'static str, Int8Options)> {
    let base = Int8Options::default;
    vec![
        ("int8-qdq-static", base()),
        (
            "int8-qoperator-static",
            Int8Options {
                format: Format::QOperator,
                ..base()
            },
        ),
        (
            "int8-qdq-dynamic",
            Int8Options {
                dynamic: true,
                ..base()
            },
        ),
        (
            "int8-qoperator-dynamic",
            Int8Options {
                format: Format::QOperator,
                dynamic: true,
                ..base()
            },
        ),
        (
            "int8-qdq-entropy-u8-symmetric-all",
            Int8Options {
                method: Method::Entropy,
                activation_type: ActivationType::U8,
                symmetric_activations: true,
                reduce_range: true,
                quantize_scan_projections: true,
                quantize_output_layer: true,
                fp16_constants: false,
                ..base()
            },
        ),
        (
            "int8-qoperator-percentile-u8-all",
            Int8Options {
                format: Format::QOperator,
                method: Method::Percentile(99.9),
                activation_type: ActivationType::U8,
                reduce_range: true,
                quantize_scan_projections: true,
                quantize_output_layer: true,
                ..base()
            },
        ),
    ]
}

/// The fp16 cases: a name and the options.
fn fp16_cases() -> Vec<(&'static str, Fp16Options)> {
    vec![
        ("fp16-default", Fp16Options::default()),
        (
            "fp16-io32-layernorm16-patterns",
            Fp16Options {
                keep_io_fp32: true,
                keep_layernorm_fp32: false,
                keep_fp32: vec!["patch_embed*".into()],
                ..Default::default()
            },
        ),
    ]
}

/// `(case, sha256)` of every compressed model, in a fixed order.
fn hashes() -> Vec<(String, String)> {
    let calib = calib();
    let mut got = Vec::new();
    for form in ["scan", "custom"] {
        let model = golden(form);
        for (name, opts) in int8_cases() {
            let set = (!opts.dynamic).then_some(&calib);
            let (q, _) = quantize(&model, &opts, set).unwrap();
            got.push((
                format!("{form}/{name}"),
                vmunet_fs::sha256_hex(&q.to_bytes()),
            ));
        }
        for (name, opts) in fp16_cases() {
            let (h, _) = to_fp16(&model, &opts, &calib).unwrap();
            got.push((
                format!("{form}/{name}"),
                vmunet_fs::sha256_hex(&h.to_bytes()),
            ));
        }
    }
    got
}

#[test]
fn compressed_golden_models_are_byte_identical_to_the_pinned_hashes() {
    let got = hashes();
    let table: String = got
        .iter()
        .map(|(c, h)| format!("    (\"{c}\", \"{h}\"),\n"))
        .collect();
    let want: Vec<(String, String)> = PINNED
        .iter()
        .map(|(c, h)| (c.to_string(), h.to_string()))
        .collect();
    assert_eq!(got, want, "the compressed models changed; now:\n{table}");
}

#[test]
fn compression_is_deterministic() {
    assert_eq!(hashes(), hashes());
}
