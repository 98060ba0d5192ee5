//! The record of the conversion: the nodes kept float32 in graph order, and the step's
//! parameters in the model's metadata.

use std::collections::BTreeMap;

use serde_json::json;
use vmunet_onnx_ir::{Graph, Model};

use super::keep::Keep;
use super::options::{Fp16Options, Fp16Report, KeepReason};

/// The nodes of `graph` in `keep`, in graph order, with the reason.
pub(super) fn kept_in_order(graph: &Graph, keep: &Keep) -> Vec<(String, KeepReason)> {
    graph
        .nodes()
        .iter()
        .filter_map(|n| {
            keep.get(n.name())
                .map(|r| (n.name().to_string(), r.clone()))
        })
        .collect()
}

/// The parameters of the `fp16` step recorded in the metadata of the model converted from
/// `source`.
pub(super) fn step_params(
    source: &Model,
    opts: &Fp16Options,
    report: &Fp16Report,
) -> serde_json::Map<String, serde_json::Value> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in &report.kept {
        *counts.entry(r.label()).or_default() += 1;
    }
    let auto: Vec<serde_json::Value> = report
        .kept
        .iter()
        .filter(|(_, r)| {
            matches!(
                r,
                KeepReason::Overflow { .. }
                    | KeepReason::Underflow { .. }
                    | KeepReason::Weight { .. }
            )
        })
        .map(|(n, r)| json!({"node": n, "reason": r.to_string()}))
        .collect();
    let mut params = serde_json::Map::new();
    params.insert(
        "source_sha256".into(),
        json!(vmunet_fs::sha256_hex(&source.to_bytes())),
    );
    params.insert("keep_fp32".into(), json!(opts.keep_fp32));
    params.insert("keep_io_fp32".into(), json!(opts.keep_io_fp32));
    params.insert("kept_fp32".into(), json!(counts));
    params.insert("kept_fp32_auto".into(), json!(auto));
    params.insert("range_check".into(), json!(report.calibration));
    params.insert("half_nodes".into(), json!(report.half_nodes));
    params.insert("casts".into(), json!(report.casts));
    params
}
