//! The golden models decode and re-encode to the same bytes, and their metadata reads.

use std::path::PathBuf;

use vmunet_onnx_ir::{Model, ScanForm};

fn golden(name: &str) -> PathBuf {
    vmunet_testdata::golden(name)
}

fn same_bytes(a: &[u8], b: &[u8], path: &std::path::Path) {
    let first = a.iter().zip(b).position(|(x, y)| x != y);
    assert!(
        a.len() == b.len() && first.is_none(),
        "{}: re-encoded {} bytes vs {} in the file, first difference at {first:?}",
        path.display(),
        a.len(),
        b.len()
    );
}

#[test]
fn golden_models_round_trip_byte_for_byte() {
    for form in ScanForm::ALL {
        let path = golden(&format!("tiny-{form}.onnx"));
        let bytes = std::fs::read(&path).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        same_bytes(&model.to_bytes(), &bytes, &path);
        model.graph.check().unwrap();
        let meta = model.metadata().unwrap();
        assert_eq!(meta.scan, Some(form));
        assert!(meta.is_vmunet());
        // Writing the typed metadata back changes nothing.
        let mut again = model.clone();
        again.set_metadata(&meta);
        same_bytes(&again.to_bytes(), &bytes, &path);
    }
}

#[test]
fn golden_scan_bodies_are_reachable() {
    let model = Model::read(&golden("tiny-scan.onnx")).unwrap();
    let scans: Vec<String> = model
        .graph
        .nodes_by_op("Scan")
        .map(|n| n.name().to_string())
        .collect();
    assert!(!scans.is_empty());
    for s in &scans {
        let body = model.graph.subgraph(s, "body").unwrap();
        assert!(body.nodes_by_op("Exp").count() > 0, "{s}");
    }
}
