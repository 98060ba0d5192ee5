//! Which `Conv` / `MatMul` nodes are quantised, which stay float (and why), and which values
//! calibration must see for them.

use std::collections::HashSet;

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::Graph;

use super::options::{Format, Int8Options};
use crate::policy::{is_scan_projection, scan_region};
use crate::select::Selection;
use crate::CompressError;

/// The reason [`plan`] gives for the scan's parameter projections: int8 weights, float
/// activations.
pub const WEIGHT_ONLY: &str = "scan parameters (x_proj / dt_proj): int8 weights only";

/// The Conv/MatMul nodes with constant weights, split by [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to quantise, in graph order.
    pub quantize: Vec<String>,
    /// Nodes kept float (or weights-only, [`WEIGHT_ONLY`]) with the reason.
    pub keep: Vec<(String, String)>,
}

/// The Conv/MatMul nodes with constant weights, split into those to quantise and those kept
/// float (with the reason).
pub fn plan(graph: &Graph, opts: &Int8Options) -> Result<Plan, CompressError> {
    let excluded = Selection::resolve(graph, &opts.exclude)?;
    let region = scan_region(graph);
    let outputs: HashSet<String> = graph
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let output_layer = |n: &NodeProto| {
        n.output.iter().any(|o| {
            outputs.contains(o)
                || graph.consumers(o).any(|c| {
                    c.op_type() == "Identity" && c.output.iter().any(|x| outputs.contains(x))
                })
        })
    };
    let mut take = Vec::new();
    let mut keep = Vec::new();
    for n in graph.nodes() {
        if !is_candidate(graph, n) {
            continue;
        }
        let name = n.name().to_string();
        let why = if region.contains(&name) {
            Some("scan region")
        } else if excluded.contains(&name) {
            Some("--exclude")
        } else if !opts.quantize_scan_projections && is_scan_projection(graph, &name) {
            Some(WEIGHT_ONLY)
        } else if !opts.quantize_output_layer && output_layer(n) {
            Some("output layer")
        } else if opts.only.as_ref().is_some_and(|o| !o.contains(&name)) {
            Some("not selected")
        } else if opts.dynamic && opts.format == Format::QOperator && n.op_type() == "Conv" {
            Some("dynamic QOperator quantises MatMul only")
        } else {
            None
        };
        match why {
            Some(w) => keep.push((name, w.to_string())),
            None => take.push(name),
        }
    }
    Ok(Plan {
        quantize: take,
        keep,
    })
}

fn is_candidate(graph: &Graph, n: &NodeProto) -> bool {
    let weight = |i: usize| {
        n.input
            .get(i)
            .and_then(|w| graph.initializer_proto(w))
            .filter(|t| t.data_type() == vmunet_onnx_ir::DataType::Float as i32)
    };
    match n.op_type() {
        "Conv" => weight(1).is_some_and(|t| t.dims.len() == 4) && weight(0).is_none(),
        "MatMul" => weight(1).is_some_and(|t| t.dims.len() == 2) && weight(0).is_none(),
        _ => false,
    }
}

/// The values calibration must see for `nodes`: each node's input and output.
pub fn calibrated_values(graph: &Graph, nodes: &[String]) -> Vec<String> {
    let mut v = Vec::new();
    for name in nodes {
        if let Some(n) = graph.find_node(name) {
            v.push(n.input[0].clone());
            v.push(n.output[0].clone());
        }
    }
    v.sort();
    v.dedup();
    v
}
