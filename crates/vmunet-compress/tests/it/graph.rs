//! fp16 and int8 rewrites of the golden tiny models (every scan form): what the policy keeps,
//! that the graphs are well formed, run in tract and stay close to float32; and the refusals.

use std::collections::HashMap;

use vmunet_compress::{
    check_float32, quantize, scan_region, to_fp16, CalibrationSet, CompressError, Format,
    Fp16Options, Int8Options, KeepReason, Method,
};
use vmunet_data::{read_npy, Array, Preprocess};
use vmunet_onnx_ir::{DataType, Model, Precision};
use vmunet_runtime::Probe;

const FORMS: [&str; 3] = ["custom", "chunked", "scan"];

fn golden(form: &str) -> Model {
    Model::read(&vmunet_testdata::golden(&format!("tiny-{form}.onnx"))).unwrap()
}

fn input() -> Array {
    read_npy(&vmunet_testdata::golden("tiny-input.npy")).unwrap()
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

fn logits(model: &Model, x: &Array) -> Vec<f32> {
    let p = Probe::new(model, &[], &x.shape, "test model").unwrap();
    p.run(x).unwrap().remove(0).data
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn ops(model: &Model) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in model.graph.nodes() {
        *m.entry(n.op_type().to_string()).or_default() += 1;
    }
    m
}

#[test]
fn fp16_keeps_the_scan_and_layernorm_float32_and_stays_within_1e_2() {
    let x = input();
    for form in FORMS {
        let model = golden(form);
        let want = logits(&model, &x);
        let (half, report) = to_fp16(&model, &Fp16Options::default(), &calib()).unwrap();
        half.graph.check().unwrap();
        // The policy: every scan-region node and every LayerNorm stays float32.
        let region = scan_region(&model.graph);
        assert!(!region.nodes.is_empty(), "{form}: no scan region found");
        for n in &region.nodes {
            assert!(
                report
                    .kept
                    .iter()
                    .any(|(k, r)| k == n && *r == KeepReason::Scan),
                "{form}: {n} not kept"
            );
        }
        let lns = model.graph.nodes_by_op("LayerNormalization").count();
        let kept_ln = report
            .kept
            .iter()
            .filter(|(_, r)| *r == KeepReason::LayerNorm)
            .count();
        assert_eq!(lns, kept_ln, "{form}");
        assert!(
            report.half_nodes > 0 && report.casts > 0,
            "{form}: {report:?}"
        );
        // Input and output are float16 by default; weights of float16 nodes too.
        assert!(
            vmunet_runtime::ModelFile::first_input_is_half(&half),
            "{form}"
        );
        let f16_weights = half
            .graph
            .initializers()
            .iter()
            .filter(|t| t.data_type() == DataType::Float16 as i32)
            .count();
        assert_eq!(f16_weights, report.half_initializers, "{form}");
        let got = logits(&half, &x);
        let rel = max_diff(&got, &want) / max_abs(&want);
        eprintln!("{form}: fp16 relative max|diff| {rel:.3e}");
        assert!(rel <= 1e-2, "{form}: {rel}");
        let meta = half.metadata().unwrap();
        assert_eq!(meta.precision, Some(Precision::Fp16));
        assert_eq!(meta.compression.last().unwrap().kind, "fp16");
    }
}

#[test]
fn fp16_keep_io_fp32_and_patterns() {
    let model = golden("custom");
    let opts = Fp16Options {
        keep_io_fp32: true,
        keep_fp32: vec!["patch_embed*".into()],
        ..Default::default()
    };
    let (half, report) = to_fp16(&model, &opts, &calib()).unwrap();
    assert!(!vmunet_runtime::ModelFile::first_input_is_half(&half));
    let out = &half.graph.outputs()[0];
    let producer = half.graph.producer(out.name()).unwrap();
    assert_eq!(producer.op_type(), "Cast");
    let asked: Vec<&String> = report
        .kept
        .iter()
        .filter(|(_, r)| *r == KeepReason::Asked)
        .map(|(n, _)| n)
        .collect();
    assert!(!asked.is_empty() && asked.iter().all(|n| n.starts_with("patch_embed")));
    // float32 I/O: the model reads the float32 input directly.
    let x = input();
    let rel = max_diff(&logits(&half, &x), &logits(&model, &x)) / max_abs(&logits(&model, &x));
    assert!(rel <= 1e-2, "{rel}");
}

#[test]
fn fp16_keeps_a_node_whose_range_overflows() {
    // Scale one MatMul weight so that its output leaves float16's safe range: the range check
    // must keep that node float32 and name it.
    let mut model = golden("custom");
    let w = "layers.0.blocks.0.self_attention.in_proj.weight";
    let (dims, data) = model.graph.initializer::<f32>(w).unwrap();
    let big: Vec<f32> = data.iter().map(|v| v * 1e6).collect();
    model.graph.set_initializer(w, &dims, &big).unwrap();
    let (_, report) = to_fp16(&model, &Fp16Options::default(), &calib()).unwrap();
    let node = model
        .graph
        .nodes()
        .iter()
        .find(|n| n.input.iter().any(|i| i == w))
        .unwrap()
        .name()
        .to_string();
    let reason = report
        .kept
        .iter()
        .find(|(n, _)| *n == node)
        .map(|(_, r)| r.clone());
    assert!(
        matches!(reason, Some(KeepReason::Overflow { abs_max }) if abs_max > vmunet_compress::fp16::SAFE_MAX),
        "{reason:?}"
    );
}

#[test]
fn int8_both_forms_run_and_track_float32() {
    let x = input();
    for form in FORMS {
        let model = golden(form);
        let want = logits(&model, &x);
        for (format, method) in [
            (Format::Qdq, Method::MinMax),
            (Format::QOperator, Method::Percentile(99.99)),
            (Format::Qdq, Method::Entropy),
        ] {
            let opts = Int8Options {
                format,
                method,
                ..Default::default()
            };
            let (q, report) = quantize(&model, &opts, Some(&calib())).unwrap();
            q.graph.check().unwrap();
            assert!(!report.quantized.is_empty());
            let counts = ops(&q);
            match format {
                Format::Qdq => {
                    assert!(counts.get("QuantizeLinear").copied().unwrap_or(0) > 0);
                    assert_eq!(counts.get("QLinearMatMul"), None);
                }
                Format::QOperator => {
                    assert!(counts.get("QLinearMatMul").copied().unwrap_or(0) > 0);
                    assert!(counts.get("QLinearConv").copied().unwrap_or(0) > 0);
                }
            }
            // Every Conv/MatMul that is quantised no longer reads float weights.
            for n in &report.quantized {
                assert!(q.graph.find_node(n).is_none() || format == Format::Qdq);
            }
            let got = logits(&q, &x);
            assert!(got.iter().all(|v| v.is_finite()));
            let rel = max_diff(&got, &want) / max_abs(&want);
            eprintln!(
                "{form} {} {method}: int8 relative max|diff| {rel:.3e}",
                format.name()
            );
            assert!(rel < 0.5, "{form} {}: {rel}", format.name());
            let meta = q.metadata().unwrap();
            assert_eq!(meta.precision, Some(Precision::Int8));
            let step = meta.compression.last().unwrap();
            assert_eq!(step.params["format"], format.name());
            assert_eq!(step.params["method"], method.to_string());
            assert_eq!(step.params["source_sha256"].as_str().unwrap().len(), 64);
        }
    }
}

#[test]
fn int8_dynamic_needs_no_calibration() {
    let model = golden("custom");
    let x = input();
    let want = logits(&model, &x);
    for format in [Format::Qdq, Format::QOperator] {
        let opts = Int8Options {
            format,
            dynamic: true,
            ..Default::default()
        };
        let (q, _) = quantize(&model, &opts, None).unwrap();
        let counts = ops(&q);
        if format == Format::QOperator {
            assert!(counts.get("MatMulInteger").copied().unwrap_or(0) > 0);
            assert!(counts.get("DynamicQuantizeLinear").copied().unwrap_or(0) > 0);
        } else {
            assert_eq!(counts.get("QuantizeLinear"), None, "weights only");
        }
        let rel = max_diff(&logits(&q, &x), &want) / max_abs(&want);
        assert!(rel < 0.2, "{}: {rel}", format.name());
    }
    // Static quantisation without images is refused.
    let err = quantize(&model, &Int8Options::default(), None).unwrap_err();
    assert!(err.to_string().contains("--calib"), "{err}");
}

#[test]
fn exclude_keeps_nodes_float_and_unknown_patterns_are_refused() {
    let model = golden("custom");
    let opts = Int8Options {
        exclude: vec!["layers.0.*".into()],
        ..Default::default()
    };
    let (_, report) = quantize(&model, &opts, Some(&calib())).unwrap();
    assert!(report.quantized.iter().all(|n| !n.starts_with("layers.0.")));
    assert!(report
        .excluded
        .iter()
        .any(|(n, w)| n.starts_with("layers.0.") && w == "--exclude"));
    for bad in ["no_such_node", "layers.9.*"] {
        let opts = Int8Options {
            exclude: vec![bad.into()],
            ..Default::default()
        };
        let err = quantize(&model, &opts, Some(&calib())).unwrap_err();
        assert!(matches!(err, CompressError::UnknownPattern { .. }), "{err}");
        assert!(err.to_string().contains(bad), "{err}");
        let fopts = Fp16Options {
            keep_fp32: vec![bad.into()],
            ..Default::default()
        };
        assert!(matches!(
            to_fp16(&model, &fopts, &calib()).unwrap_err(),
            CompressError::UnknownPattern { .. }
        ));
    }
}

#[test]
fn compressed_models_are_not_compressed_again() {
    let model = golden("custom");
    check_float32(&model).unwrap();
    let (q, _) = quantize(&model, &Int8Options::default(), Some(&calib())).unwrap();
    let (h, _) = to_fp16(&model, &Fp16Options::default(), &calib()).unwrap();
    for (what, m) in [("int8", &q), ("fp16", &h)] {
        let e1 = quantize(m, &Int8Options::default(), Some(&calib())).unwrap_err();
        let e2 = to_fp16(m, &Fp16Options::default(), &calib()).unwrap_err();
        for e in [e1, e2] {
            assert!(
                matches!(e, CompressError::AlreadyCompressed(_)),
                "{what}: {e}"
            );
        }
    }
}

#[test]
fn calibration_folder_errors_name_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = Preprocess {
        height: 64,
        width: 64,
        channels: 3,
    };
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = CalibrationSet::from_dir(&empty, 8, &pre).unwrap_err();
    assert!(
        e.to_string().contains("empty") && e.to_string().contains("no images"),
        "{e}"
    );
    let missing = tmp.path().join("missing");
    let e = CalibrationSet::from_dir(&missing, 8, &pre).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("broken.png"), b"not a png").unwrap();
    let e = CalibrationSet::from_dir(&bad, 8, &pre).unwrap_err();
    assert!(e.to_string().contains("broken.png"), "{e}");
    // A good folder: evenly spread picks, preprocessed to the model size.
    let good = tmp.path().join("good");
    std::fs::create_dir(&good).unwrap();
    for i in 0..6 {
        image::RgbImage::from_pixel(40 + i, 30, image::Rgb([i as u8 * 40, 100, 200]))
            .save(good.join(format!("img{i}.png")))
            .unwrap();
    }
    let set = CalibrationSet::from_dir(&good, 3, &pre).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.shape(), vec![1, 3, 64, 64]);
    let names: Vec<String> = set
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["img0.png", "img2.png", "img4.png"]);
}
