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
        "8d60408b7fe3ef17cb3ec095f7416c5271966fb19347943f78ae034deda671d6",
    ),
    (
        "scan/int8-qoperator-static",
        "46b91388ae86243dc3cd2e644866a9f049922b658ae20a43a38e108d6e1daa21",
    ),
    (
        "scan/int8-qdq-dynamic",
        "6f03ddba048b6e8c43c7af94c7598672e93b9c0f280e602ede5913be890d383b",
    ),
    (
        "scan/int8-qoperator-dynamic",
        "bd0e61246a1424c9cfd083cad230089af03a824ce2732af23ad612fbdfabdb09",
    ),
    (
        "scan/int8-qdq-entropy-u8-symmetric-all",
        "7049d6374b46140d6a5ce747321ba058b6a0cc3f02005e2c52ca996b35e28bc2",
    ),
    (
        "scan/int8-qoperator-percentile-u8-all",
        "62c8314ddc10b3494cd746a3532cce6237650add4e1f7983255f3456ae535394",
    ),
    (
        "scan/fp16-default",
        "79f7d1d94c10f0188445941315a41605ca5844f4866feb1f9ecf07b1c24162b0",
    ),
    (
        "scan/fp16-io32-layernorm16-patterns",
        "d350927dfb26d011320fbb7797fa0f6b07c179cf49dcd77dda149bbb90794c3d",
    ),
    (
        "custom/int8-qdq-static",
        "91a0f23a7bc55aeb826cade2c02d784ee1baa9dbae6584602f6fd854a73da68a",
    ),
    (
        "custom/int8-qoperator-static",
        "55499a623145f14496df533101f9991a8115b414a0e1e00906d41c1c1c446328",
    ),
    (
        "custom/int8-qdq-dynamic",
        "884b396c56dc26b3d70eca7f6f5be2f5d65ad06cb58c8ef3ef8c62bac48f625a",
    ),
    (
        "custom/int8-qoperator-dynamic",
        "63f7c11a48a868ab6f739200d509d99c4bfd28a51f5c536b29456a98be5ad9df",
    ),
    (
        "custom/int8-qdq-entropy-u8-symmetric-all",
        "8f3025270fe431831d8638ebadbda0c88600fb24356d959f38edd713a5e2a675",
    ),
    (
        "custom/int8-qoperator-percentile-u8-all",
        "a4680da487147f633476bf068fc87f9d5e925c52a4e24380a6772afade11f8fa",
    ),
    (
        "custom/fp16-default",
        "a79e36cc704d91f52648a8a23e681aee2a46da4f162718864955ee44f9defc34",
    ),
    (
        "custom/fp16-io32-layernorm16-patterns",
        "30c7c121a7f98237df91f34f05ff6e932bb587209f35409031f178ec1d201f9d",
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
