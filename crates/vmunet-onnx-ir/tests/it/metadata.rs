//! The metadata schema: round trip, unknown keys, typed errors.

use vmunet_onnx_ir::pb::StringStringEntryProto;
use vmunet_onnx_ir::{
    keys, Activation, CompressionStep, InputSize, ModelMetadata, Precision, Preprocessing, ScanForm,
};

fn full() -> ModelMetadata {
    let mut params = serde_json::Map::new();
    params.insert("sparsity".into(), serde_json::json!(0.5));
    ModelMetadata {
        config: Some(r#"{"num_classes":1}"#.into()),
        output_activation: Some(Activation::Softmax),
        preprocessing: Some(Preprocessing::Synapse),
        class_names: vec!["background".into(), "lesion".into()],
        scan: Some(ScanForm::Chunked),
        chunk: Some(48),
        input_size: Some(InputSize::Dynamic {
            max_size: Some(512),
        }),
        precision: Some(Precision::Int8),
        toolkit_version: Some("0.1.0".into()),
        source: Some("ckpt.bpk".into()),
        source_sha256: Some("ab".repeat(32)),
        compression: vec![CompressionStep {
            kind: "prune".into(),
            params,
            tool: Some("vmunet 0.1.0".into()),
        }],
        extra: vec![("author".into(), "me".into())],
    }
}

fn entry(k: &str, v: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    }
}

#[test]
fn every_field_round_trips() {
    let m = full();
    let props = m.to_props();
    assert_eq!(
        props.len(),
        keys::ALL.len() + 1,
        "all keys and the extra one"
    );
    assert_eq!(ModelMetadata::from_props(&props).unwrap(), m);
    let fixed = ModelMetadata {
        input_size: Some(InputSize::Fixed {
            height: 256,
            width: 192,
        }),
        compression: vec![],
        ..full()
    };
    let props = fixed.to_props();
    assert!(props.contains(&entry(keys::INPUT_SIZE, "256x192")));
    assert!(
        !props.iter().any(|e| e.key() == keys::COMPRESSION),
        "empty list not written"
    );
    assert_eq!(ModelMetadata::from_props(&props).unwrap(), fixed);
    assert_eq!(
        ModelMetadata::from_props(&[]).unwrap(),
        ModelMetadata::default()
    );
}

#[test]
fn files_of_the_previous_exporter_still_read() {
    // Before `input_size`, a dynamic chunked export recorded only `max_size`.
    let props = [
        entry(keys::CONFIG, "{}"),
        entry(keys::OUTPUT_ACTIVATION, "sigmoid"),
        entry(keys::CLASS_NAMES, "foreground"),
        entry(keys::SCAN, "chunked"),
        entry(keys::CHUNK, "32"),
        entry(keys::MAX_SIZE, "1024"),
        // Before it was typed, the preprocessing was the ISIC transform in words.
        entry(
            keys::PREPROCESSING,
            "per-image min-max rescale of all channels jointly to [0,255], then bilinear resize to 256x256",
        ),
    ];
    let m = ModelMetadata::from_props(&props).unwrap();
    assert_eq!(m.max_size(), Some(1024));
    assert_eq!(m.preprocessing, Some(Preprocessing::Isic));
    assert_eq!(m.output_activation, Some(Activation::Sigmoid));
    assert_eq!(m.class_names, ["foreground"]);
    assert!(m.is_vmunet());
}

#[test]
fn bad_values_name_the_key() {
    for (k, v) in [
        (keys::CONFIG, "{not json"),
        (keys::OUTPUT_ACTIVATION, "relu"),
        (keys::SCAN, "loop"),
        (keys::CHUNK, "0"),
        (keys::MAX_SIZE, "-3"),
        (keys::INPUT_SIZE, "256by256"),
        (keys::PRECISION, "fp64"),
        (keys::PREPROCESSING, "imagenet"),
        (keys::SOURCE_SHA256, "xyz"),
        (keys::COMPRESSION, "{}"),
    ] {
        let e = ModelMetadata::from_props(&[entry(k, v)]).unwrap_err();
        assert_eq!(e.key, k, "{e}");
        assert!(e.to_string().contains(k), "{e}");
    }
    let twice = [entry(keys::SCAN, "scan"), entry(keys::SCAN, "custom")];
    assert!(ModelMetadata::from_props(&twice)
        .unwrap_err()
        .reason
        .contains("more than once"));
    let fixed_with_max = [
        entry(keys::INPUT_SIZE, "64x64"),
        entry(keys::MAX_SIZE, "128"),
    ];
    assert_eq!(
        ModelMetadata::from_props(&fixed_with_max).unwrap_err().key,
        keys::MAX_SIZE
    );
}

#[test]
fn the_onnx_readme_documents_every_key() {
    let readme = include_str!("../../../../onnx/README.md");
    for (k, _) in keys::ALL {
        assert!(
            readme.contains(&format!("`{k}`")),
            "onnx/README.md lacks `{k}`"
        );
    }
}
