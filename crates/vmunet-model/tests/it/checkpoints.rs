//! Checkpoint loading: formats, config inference, the project's own record, bad files.

use crate::common::*;
use burn::module::Module;
use vmunet_model::checkpoint::{self, CheckpointError, CheckpointFormat};
use vmunet_model::{CpuBackend, ModelError, VmUnetConfig};

#[test]
fn paper_config_has_the_paper_parameter_count() {
    let m = VmUnetConfig::paper(1)
        .init::<CpuBackend>(&Default::default())
        .unwrap();
    assert_eq!(m.num_params(), 27_427_561);
    let m = VmUnetConfig::small(1)
        .init::<CpuBackend>(&Default::default())
        .unwrap();
    assert_eq!(m.num_params(), 2_169_403);
}

#[test]
fn inference_recovers_the_fixture_config() {
    let Some(dir) = fixtures() else { return };
    for file in [
        "small_strong_model.pth",
        "small_model.pth",
        "small_strong_model.safetensors",
    ] {
        let info = checkpoint::inspect(&dir.join(file)).unwrap();
        assert_eq!(info.config, VmUnetConfig::small(1), "{file}");
        assert_eq!(info.shapes.len(), 222);
        assert_eq!(info.num_params(), 2_169_403);
    }
    assert_eq!(
        checkpoint::detect_format(&dir.join("small_strong_model.safetensors")).unwrap(),
        CheckpointFormat::Safetensors
    );
}

#[test]
fn burnpack_round_trip_is_exact() {
    let Some(dir) = fixtures() else { return };
    let dev = Default::default();
    let (model, _) =
        checkpoint::load::<CpuBackend>(&dir.join("small_strong_model.pth"), &dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.bpk");
    checkpoint::save(&model, &out).unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temp file left"
    );
    let info = checkpoint::inspect(&out).unwrap();
    assert_eq!(info.format, CheckpointFormat::Burnpack);
    assert_eq!(info.config, VmUnetConfig::small(1));
    assert!(info
        .shapes
        .contains_key("layers.0.blocks.0.self_attention.A_logs"));
    let (back, _) = checkpoint::load::<CpuBackend>(&out, &dev).unwrap();
    let x = tensor4(&npy(&dir, "small_strong_input.npy"));
    let (_, a) = to_vec(model.forward(x.clone()).unwrap());
    let (_, b) = to_vec(back.forward(x).unwrap());
    assert_eq!(a, b);
}

#[test]
fn wrapped_and_prefixed_state_dicts_load() {
    // A safetensors file with `module.vmunet.` prefixes (DataParallel) loads the same.
    let Some(dir) = fixtures() else { return };
    let tensors = read_safetensors(&dir.join("small_strong_model.safetensors"));
    assert!(tensors[0].0.starts_with("vmunet."));
    let renamed: Vec<_> = tensors
        .into_iter()
        .map(|(k, s, d)| (format!("module.{k}"), s, d))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("dp.safetensors");
    write_safetensors(&p, &renamed);
    let info = checkpoint::inspect(&p).unwrap();
    assert_eq!(info.config, VmUnetConfig::small(1));
    checkpoint::load::<CpuBackend>(&p, &Default::default()).unwrap();
}

fn fixture_tensors() -> Option<Vec<NamedTensor>> {
    let dir = fixtures()?;
    Some(read_safetensors(
        &dir.join("small_strong_model.safetensors"),
    ))
}

fn load_err(path: &std::path::Path) -> CheckpointError {
    match checkpoint::load::<CpuBackend>(path, &Default::default()) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_keys_are_listed() {
    let Some(mut t) = fixture_tensors() else {
        return;
    };
    let gone = "vmunet.layers.1.blocks.0.self_attention.Ds";
    t.retain(|(k, _, _)| k != gone);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("missing.safetensors");
    write_safetensors(&p, &t);
    let e = load_err(&p);
    let msg = e.to_string();
    assert!(matches!(e, CheckpointError::Keys { .. }), "{msg}");
    assert!(
        msg.contains("missing.safetensors") && msg.contains("layers.1.blocks.0.self_attention.Ds"),
        "{msg}"
    );
}

#[test]
fn unexpected_keys_are_listed() {
    let Some(mut t) = fixture_tensors() else {
        return;
    };
    t.push(("vmunet.head.extra.weight".into(), vec![2, 2], vec![0.0; 4]));
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("extra.safetensors");
    write_safetensors(&p, &t);
    let msg = load_err(&p).to_string();
    assert!(
        msg.contains("unexpected") && msg.contains("head.extra.weight"),
        "{msg}"
    );
}

#[test]
fn shape_mismatches_name_key_expected_and_found() {
    let Some(mut t) = fixture_tensors() else {
        return;
    };
    let key = "vmunet.layers.2.blocks.1.self_attention.out_norm.bias";
    let entry = t.iter_mut().find(|(k, _, _)| k == key).unwrap();
    entry.1 = vec![191];
    entry.2.pop();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shape.safetensors");
    write_safetensors(&p, &t);
    let e = load_err(&p);
    let msg = e.to_string();
    assert!(matches!(e, CheckpointError::Shapes { .. }), "{msg}");
    assert!(
        msg.contains("layers.2.blocks.1.self_attention.out_norm.bias")
            && msg.contains("[192]")
            && msg.contains("[191]"),
        "{msg}"
    );
}

#[test]
fn explicit_config_mismatch_reports_shapes() {
    let Some(dir) = fixtures() else { return };
    let cfg = VmUnetConfig::small(1).with_d_state(8);
    let e = checkpoint::load_with_config::<CpuBackend>(
        &dir.join("small_strong_model.pth"),
        &cfg,
        &Default::default(),
    )
    .expect_err("d_state mismatch must fail");
    let msg = e.to_string();
    assert!(
        msg.contains("A_logs")
            && msg.contains("expected [192, 8]")
            && msg.contains("found [192, 16]"),
        "{msg}"
    );
}

#[test]
fn truncated_files_are_detected() {
    let Some(dir) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for file in ["small_strong_model.pth", "small_strong_model.safetensors"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let p = tmp.path().join(format!("cut_{file}"));
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_err(&p);
        let msg = e.to_string();
        assert!(
            matches!(e, CheckpointError::Truncated { .. }),
            "{file}: {msg}"
        );
        assert!(msg.contains(&format!("cut_{file}")), "{msg}");
    }
}

#[test]
fn non_checkpoints_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.pth");
    std::fs::write(&text, "these are not weights\n").unwrap();
    let e = load_err(&text);
    assert!(matches!(e, CheckpointError::NotACheckpoint { .. }), "{e}");
    assert!(e.to_string().contains("notes.pth"));
    let empty = tmp.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(load_err(&empty).to_string().contains("empty"));
    let missing = tmp.path().join("nope.pth");
    assert!(matches!(load_err(&missing), CheckpointError::Io { .. }));
    // Valid safetensors, but not VM-UNet.
    let other = tmp.path().join("other.safetensors");
    write_safetensors(
        &other,
        &[("encoder.weight".into(), vec![2], vec![1.0, 2.0])],
    );
    let e = load_err(&other);
    assert!(matches!(e, CheckpointError::NotVmUnet { .. }), "{e}");
    assert!(e.to_string().contains("patch_embed.proj.weight"), "{e}");
}

#[test]
fn input_shape_errors_are_clear() {
    let m = VmUnetConfig::small(1)
        .init::<CpuBackend>(&Default::default())
        .unwrap();
    let err = m.check_input([1, 3, 100, 64]).unwrap_err();
    assert!(matches!(err, ModelError::Input { .. }));
    assert!(err.to_string().contains("multiples of 32"), "{err}");
    assert!(m
        .check_input([1, 4, 64, 64])
        .unwrap_err()
        .to_string()
        .contains("channels"));
    assert!(m.check_input([0, 3, 64, 64]).is_err());
    m.check_input([2, 1, 64, 96]).unwrap();
    let x = burn::tensor::Tensor::<CpuBackend, 4>::zeros([1, 3, 33, 64], &Default::default());
    assert!(m.forward(x).is_err());
}

#[test]
fn grey_input_equals_repeated_rgb() {
    let m = VmUnetConfig::small(1)
        .init::<CpuBackend>(&Default::default())
        .unwrap();
    let g = burn::tensor::Tensor::<CpuBackend, 4>::random(
        [1, 1, 64, 64],
        burn::tensor::Distribution::Default,
        &Default::default(),
    );
    let (_, a) = to_vec(m.forward(g.clone()).unwrap());
    let (_, b) = to_vec(m.forward(g.repeat_dim(1, 3)).unwrap());
    assert_eq!(a, b);
}

#[test]
fn invalid_configs_are_rejected() {
    assert!(VmUnetConfig::paper(1)
        .with_dims(vec![96, 190, 384, 768])
        .validate()
        .is_err());
    assert!(VmUnetConfig::paper(1)
        .with_depths(vec![2, 2])
        .validate()
        .is_err());
    assert!(VmUnetConfig::paper(0).validate().is_err());
    VmUnetConfig::paper(4).validate().unwrap();
}

/// A checkpoint written after training records its input size; evaluation, export and
/// inference default to it. One without it reads as `None`; a bad value is an error naming the
/// file.
#[test]
fn burnpack_records_the_training_input_size() {
    let dev = Default::default();
    let cfg = VmUnetConfig {
        dims: vec![8, 16, 32, 64],
        depths: vec![1, 1, 1, 1],
        depths_decoder: vec![1, 1, 1, 1],
        d_state: 4,
        ..VmUnetConfig::small(1)
    };
    let model = cfg.init::<CpuBackend>(&dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let with = tmp.path().join("trained.bpk");
    let record = checkpoint::CheckpointRecord {
        input_size: Some(96),
        preprocessing: Some(vmunet_onnx_ir::Preprocessing::Synapse),
        ..Default::default()
    };
    checkpoint::save_recorded(&model, &with, &record).unwrap();
    let info = checkpoint::inspect(&with).unwrap();
    assert_eq!(info.input_size, Some(96));
    assert_eq!(
        info.preprocessing,
        Some(vmunet_onnx_ir::Preprocessing::Synapse)
    );
    let without = tmp.path().join("plain.bpk");
    checkpoint::save(&model, &without).unwrap();
    assert_eq!(checkpoint::inspect(&without).unwrap().input_size, None);
    assert_eq!(checkpoint::inspect(&without).unwrap().preprocessing, None);
    let (_, info) = checkpoint::load::<CpuBackend>(&with, &dev).unwrap();
    assert_eq!(info.input_size, Some(96));

    // 100 is not a multiple of the patch size times the downsampling (32).
    let bad = tmp.path().join("bad.bpk");
    let record = checkpoint::CheckpointRecord {
        input_size: Some(100),
        ..Default::default()
    };
    checkpoint::save_recorded(&model, &bad, &record).unwrap();
    match checkpoint::inspect(&bad) {
        Err(e @ CheckpointError::NotVmUnet { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("bad.bpk") && msg.contains("`100`"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A burnpack record written the way `save_recorded` wrote them before the history was
/// typed: the same CBOR metadata entries, the history as JSON text under `compression`.
fn save_untyped(model: &vmunet_model::VmUnet<CpuBackend>, path: &std::path::Path, history: &str) {
    use burn_store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot};
    let mut s = BurnpackStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .auto_extension(false)
        .overwrite(true)
        .metadata("model", "vm-unet")
        .metadata("input_size", "96")
        .metadata("compression", history)
        .with_remap_pattern(r"\.a_logs$", ".A_logs")
        .with_remap_pattern(r"\.ds$", ".Ds");
    model.save_into(&mut s).unwrap();
}

/// A pruned or quantized checkpoint records its compression steps; files written before the
/// history was typed read back with the same steps, files written now are byte-identical to
/// them, and a history that is not a list of steps is an error naming the file.
#[test]
fn burnpack_records_the_compression_history() {
    use vmunet_onnx_ir::CompressionStep;
    let dev = Default::default();
    let cfg = VmUnetConfig {
        dims: vec![8, 16, 32, 64],
        depths: vec![1, 1, 1, 1],
        depths_decoder: vec![1, 1, 1, 1],
        d_state: 4,
        ..VmUnetConfig::small(1)
    };
    let model = cfg.init::<CpuBackend>(&dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let step = |kind: &str, ratio: f64| {
        let mut params = serde_json::Map::new();
        params.insert("ratio".into(), ratio.into());
        params.insert(
            "finetune".into(),
            serde_json::json!({"epochs": 2, "lr": 1e-4}),
        );
        CompressionStep {
            kind: kind.into(),
            params,
            tool: Some("vmunet-compress 0.1.0".into()),
        }
    };
    let steps = vec![step("prune", 0.25), step("prune", 0.5)];
    let typed = tmp.path().join("typed.bpk");
    let record = checkpoint::CheckpointRecord {
        input_size: Some(96),
        history: steps.clone(),
        ..Default::default()
    };
    checkpoint::save_recorded(&model, &typed, &record).unwrap();
    let info = checkpoint::inspect(&typed).unwrap();
    assert_eq!(info.history, steps);
    assert_eq!(info.input_size, Some(96));
    let plain = tmp.path().join("plain.bpk");
    checkpoint::save(&model, &plain).unwrap();
    assert!(checkpoint::inspect(&plain).unwrap().history.is_empty());

    let untyped = tmp.path().join("untyped.bpk");
    save_untyped(&model, &untyped, &serde_json::to_string(&steps).unwrap());
    assert_eq!(checkpoint::inspect(&untyped).unwrap().history, steps);
    assert_eq!(
        std::fs::read(&typed).unwrap(),
        std::fs::read(&untyped).unwrap()
    );

    let bad = tmp.path().join("bad-history.bpk");
    save_untyped(&model, &bad, r#"{"kind": "prune"}"#);
    match checkpoint::inspect(&bad) {
        Err(e @ CheckpointError::History { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("bad-history.bpk"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The reference model in `models/` loads, has the architecture its README states and records
/// the input size it was trained at.
#[test]
fn shipped_reference_model_loads_with_its_training_size() {
    let path = vmunet_testdata::repo_root().join("models/isic2017-16-128.bpk");
    let (model, info) = checkpoint::load::<CpuBackend>(&path, &Default::default()).unwrap();
    assert_eq!(info.input_size, Some(128));
    assert_eq!(info.config.dims, vec![16, 32, 64, 128]);
    assert_eq!(model.num_params(), 1_098_621);
}
