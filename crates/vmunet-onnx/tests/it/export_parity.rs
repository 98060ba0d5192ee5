//! Every export formulation (`scan`, `chunked`, `custom`; fixed and dynamic H/W), run in tract
//! and ONNX Runtime, against the official PyTorch logits and the burn model.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use vmunet_data::Array;
use vmunet_model::{checkpoint, CpuBackend, VmUnet, VmUnetConfig};
use vmunet_onnx::{export, write, ExportOptions, ScanForm, CUSTOM_DOMAIN, CUSTOM_OP};
use vmunet_onnx_ir::{Activation, InputSize, ModelMetadata, Precision};
use vmunet_runtime::{OrtOptions, OrtRuntime, Runtime, TractRuntime};

fn ort_available() -> bool {
    let ok = std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| Path::new(&p).is_file());
    if !ok {
        eprintln!("SKIP (ONNX Runtime part): ORT_DYLIB_PATH is not set (run through `make test`)");
    }
    ok
}

/// The runtimes to check: tract always, ONNX Runtime when its library is installed.
/// tract (when `tract`) and ONNX Runtime (when available) on `path`.
///
/// tract optimises a plan per input shape, and a size-dynamic chunked graph (TensorRT's form:
/// thousands of nodes) takes it minutes per shape on two cores; those exports are checked in
/// ONNX Runtime here, and tract's chunked path at a fixed size (and on the golden models).
fn runtimes_for(path: &Path, tract: bool) -> Vec<Box<dyn Runtime>> {
    let mut v: Vec<Box<dyn Runtime>> = Vec::new();
    if tract {
        v.push(Box::new(TractRuntime::open(path).unwrap()));
    }
    if ort_available() {
        v.push(Box::new(
            OrtRuntime::open(path, &OrtOptions::default()).unwrap(),
        ));
    }
    v
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

struct Variant {
    label: &'static str,
    opts: ExportOptions,
}

fn variants() -> Vec<Variant> {
    let form = |scan, chunk, dynamic_hw| ExportOptions {
        scan,
        chunk,
        dynamic_hw,
        max_size: 256,
        ..Default::default()
    };
    vec![
        Variant {
            label: "scan",
            opts: form(ScanForm::Loop, 64, false),
        },
        Variant {
            label: "scan --dynamic-hw",
            opts: form(ScanForm::Loop, 64, true),
        },
        Variant {
            label: "chunked --chunk 64",
            opts: form(ScanForm::Chunked, 64, false),
        },
        // 48 does not divide any stage's length: exercises the padding.
        Variant {
            label: "chunked --chunk 48 --dynamic-hw",
            opts: form(ScanForm::Chunked, 48, true),
        },
        Variant {
            label: "custom",
            opts: form(ScanForm::Custom, 64, false),
        },
        Variant {
            label: "custom --dynamic-hw",
            opts: form(ScanForm::Custom, 64, true),
        },
    ]
}

fn load(dir: &Path, name: &str) -> (VmUnet<CpuBackend>, VmUnetConfig) {
    let (m, info) =
        checkpoint::load::<CpuBackend>(&dir.join(format!("{name}_model.pth")), &Default::default())
            .unwrap();
    (m, info.config)
}

#[test]
fn every_formulation_matches_the_official_logits_in_every_runtime() {
    let Some(dir) = vmunet_testdata::official_small("export parity") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (name, tol) in [("small_strong", 5e-4f32), ("small", 1e-4)] {
        let (model, cfg) = load(&dir, name);
        for v in variants() {
            let path = tmp.path().join(format!("{name}.onnx"));
            write(&export(&model, &cfg, &v.opts).unwrap(), &path).unwrap();
            let tract = !(v.opts.scan == ScanForm::Chunked && v.opts.dynamic_hw);
            for mut rt in runtimes_for(&path, tract) {
                for suffix in ["", "_b2"] {
                    let input =
                        vmunet_data::read_npy(&dir.join(format!("{name}_input{suffix}.npy")))
                            .unwrap();
                    let want =
                        vmunet_data::read_npy(&dir.join(format!("{name}_logits{suffix}.npy")))
                            .unwrap();
                    let got = rt.run(&input).unwrap();
                    assert_eq!(got.shape, want.shape);
                    let d = max_diff(&got.data, &want.data);
                    eprintln!(
                        "{name}{suffix} [{}] {}: max|diff| {d:.3e}",
                        v.label,
                        rt.description()
                    );
                    assert!(
                        d <= tol,
                        "{name}{suffix} [{}] {}: max|diff| {d} > {tol}",
                        v.label,
                        rt.description()
                    );
                }
            }
        }
    }
}

/// A dynamic-size export at sizes other than the one exported with, against burn itself.
#[test]
fn dynamic_exports_run_other_sizes_like_burn() {
    let Some(dir) = vmunet_testdata::official_small("export parity") else {
        return;
    };
    let (model, cfg) = load(&dir, "small_strong");
    let tmp = tempfile::tempdir().unwrap();
    for scan in ScanForm::ALL {
        let opts = ExportOptions {
            scan,
            chunk: 32,
            dynamic_hw: true,
            max_size: 256,
            ..Default::default()
        };
        let path = tmp.path().join(format!("dyn_{scan}.onnx"));
        write(&export(&model, &cfg, &opts).unwrap(), &path).unwrap();
        for (h, w) in [(64, 96), (128, 64)] {
            let n = 3 * h * w;
            let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 255) as f32).collect();
            let x = Tensor::<CpuBackend, 4>::from_data(
                TensorData::new(data.clone(), [1, 3, h, w]),
                &Default::default(),
            );
            let want = model
                .forward(x)
                .unwrap()
                .into_data()
                .into_vec::<f32>()
                .unwrap();
            let input = Array {
                shape: vec![1, 3, h, w],
                data,
            };
            for mut rt in runtimes_for(&path, scan != ScanForm::Chunked) {
                let got = rt.run(&input).unwrap();
                assert_eq!(got.shape, vec![1, cfg.num_classes, h, w]);
                let d = max_diff(&got.data, &want);
                eprintln!(
                    "{h}x{w} [{scan} --dynamic-hw] {}: max|diff| vs burn {d:.3e}",
                    rt.description()
                );
                assert!(d <= 5e-4, "{h}x{w} [{scan}] {}: {d}", rt.description());
            }
        }
        // Sizes the file cannot take are refused by name, not computed wrongly.
        let mut rt = TractRuntime::open(&path).unwrap();
        for bad in [[1, 3, 80, 64], [1, 3, 64, 70]] {
            let err = rt
                .run(&Array {
                    shape: bad.to_vec(),
                    data: vec![0.0; bad.iter().product()],
                })
                .unwrap_err();
            assert!(err.to_string().contains("multiples of 32"), "{err}");
        }
        if scan == ScanForm::Chunked {
            let big = [1, 3, 288, 64];
            let err = rt
                .run(&Array {
                    shape: big.to_vec(),
                    data: vec![0.0; big.iter().product()],
                })
                .unwrap_err();
            assert!(err.to_string().contains("up to 256"), "{err}");
        }
    }
}

/// The chunked form never exponentiates a positive number: huge `delta * |A|` stays finite.
#[test]
fn chunked_form_is_stable_for_large_decays() {
    let Some(dir) = vmunet_testdata::official_small("export parity") else {
        return;
    };
    let (mut model, cfg) = load(&dir, "small");
    // Push every A_log up so that exp(A_log) (|A|) is ~e^6 ≈ 400 per unit of delta.
    use burn::module::Param;
    for layer in model.layers.iter_mut() {
        for blk in layer.blocks.iter_mut() {
            let a = blk.self_attention.a_logs.val() + 6.0;
            blk.self_attention.a_logs = Param::from_tensor(a);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = vmunet_data::read_npy(&dir.join("small_input.npy")).unwrap();
    let x = Tensor::<CpuBackend, 4>::from_data(
        TensorData::new(input.data.clone(), input.shape.clone()),
        &Default::default(),
    );
    let want = model
        .forward(x)
        .unwrap()
        .into_data()
        .into_vec::<f32>()
        .unwrap();
    let opts = ExportOptions {
        scan: ScanForm::Chunked,
        chunk: 16,
        ..Default::default()
    };
    let path = tmp.path().join("stiff.onnx");
    write(&export(&model, &cfg, &opts).unwrap(), &path).unwrap();
    let got = TractRuntime::open(&path).unwrap().run(&input).unwrap();
    assert!(got.data.iter().all(|v| v.is_finite()), "non-finite logits");
    let d = max_diff(&got.data, &want);
    eprintln!("chunked, |A| x 400: max|diff| vs burn {d:.3e}");
    assert!(d <= 1e-3, "{d}");
}

/// The reference ONNX checker (full check) and ONNX Runtime CPU from Python, through the test
/// virtual environment the Makefile builds (`VMUNET_PYTHON`), for every formulation.
#[test]
fn onnx_checker_and_onnxruntime_accept_the_export() {
    let Some(dir) = vmunet_testdata::official_small("export parity") else {
        return;
    };
    let Some(python) =
        std::env::var_os("VMUNET_PYTHON").filter(|p| std::path::Path::new(p).is_file())
    else {
        eprintln!("SKIP: VMUNET_PYTHON is not set (run through `make test`, which installs onnx and onnxruntime)");
        return;
    };
    let script = vmunet_testdata::repo_root().join("onnx/check_model.py");
    let (model, cfg) = load(&dir, "small_strong");
    let tmp = tempfile::tempdir().unwrap();
    for v in variants() {
        let path = tmp.path().join("small_strong.onnx");
        write(&export(&model, &cfg, &v.opts).unwrap(), &path).unwrap();
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg(&path);
        // Python's onnxruntime does not know the custom operator: checker only.
        if v.opts.scan != ScanForm::Custom {
            cmd.arg(dir.join("small_strong_input_b2.npy"))
                .arg(dir.join("small_strong_logits_b2.npy"))
                .arg("5e-4");
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("[{}] {text}", v.label);
        assert!(out.status.success(), "[{}] {text}", v.label);
        assert!(text.contains("onnx.checker: OK"), "{text}");
    }
}

#[test]
fn metadata_names_the_classes_and_the_formulation() {
    let Some(dir) = vmunet_testdata::official_small("export parity") else {
        return;
    };
    let (model, cfg) = load(&dir, "small");
    let meta = |opts: &ExportOptions| -> ModelMetadata {
        export(&model, &cfg, opts).unwrap().metadata().unwrap()
    };
    let m = meta(&ExportOptions {
        class_names: Some(vec!["lesion".into()]),
        scan: ScanForm::Chunked,
        chunk: 32,
        ..Default::default()
    });
    assert_eq!(m.class_names, ["lesion"], "{m:?}");
    assert_eq!(m.scan, Some(ScanForm::Chunked), "{m:?}");
    assert_eq!(m.chunk, Some(32), "{m:?}");
    assert_eq!(
        m.input_size,
        Some(InputSize::Fixed {
            height: 256,
            width: 256
        })
    );
    assert_eq!(m.precision, Some(Precision::Fp32));
    assert_eq!(m.output_activation, Some(Activation::Sigmoid));
    assert_eq!(
        serde_json::from_str::<VmUnetConfig>(m.config.as_deref().unwrap()).unwrap(),
        cfg
    );
    let m = meta(&ExportOptions::default());
    assert_eq!(m.class_names, ["foreground"], "{m:?}");
    assert_eq!(m.chunk, None);
    let m = meta(&ExportOptions {
        dynamic_hw: true,
        scan: ScanForm::Chunked,
        max_size: 512,
        ..Default::default()
    });
    assert_eq!(m.max_size(), Some(512));
    let err = export(
        &model,
        &cfg,
        &ExportOptions {
            class_names: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("2 class names"), "{err}");
    let err = export(
        &model,
        &cfg,
        &ExportOptions {
            scan: ScanForm::Chunked,
            chunk: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--chunk 0"), "{err}");
    let custom = export(
        &model,
        &cfg,
        &ExportOptions {
            scan: ScanForm::Custom,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(custom
        .header
        .opset_import
        .iter()
        .any(|o| o.domain() == CUSTOM_DOMAIN && o.version() == 1));
    assert!(custom
        .graph
        .nodes_by_op(CUSTOM_OP)
        .any(|n| n.domain() == CUSTOM_DOMAIN));
}
