//! What VM-UNet keeps in float32 by default: the selective scan and everything between its
//! parameters and the block's output norm.

use std::collections::{BTreeSet, HashMap, HashSet};

use vmunet_onnx_ir::{Graph, CUSTOM_OP};

/// Ops whose numerics the selective scan depends on: the recurrence itself (custom op or ONNX
/// `Scan`), the step size's softplus and the exponentials of `delta * A`.
const SCAN_SEEDS: [&str; 4] = [CUSTOM_OP, "Scan", "Softplus", "Exp"];

/// The scan region of a graph: the nodes VM-UNet's numerics need in float32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRegion {
    /// Node names, in graph order.
    pub nodes: Vec<String>,
}

impl ScanRegion {
    /// Whether `node` is in the region.
    pub fn contains(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n == node)
    }
}

/// The scan region: the scan seeds (custom `SelectiveScan`, `Scan`, `Softplus`, `Exp`) and
/// every node downstream of them up to (not including) the next `LayerNormalization` (the
/// block's `out_norm`), which ends each SS2D block's scan.
///
/// For the custom form this is the operator and the merge of its four directions; for the
/// chunked form the whole log-depth recurrence.
pub fn scan_region(graph: &Graph) -> ScanRegion {
    let nodes = graph.nodes();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for v in &n.input {
            readers.entry(v.as_str()).or_default().push(i);
        }
    }
    let mut inside: BTreeSet<usize> = BTreeSet::new();
    let mut stack: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| SCAN_SEEDS.contains(&n.op_type()))
        .map(|(i, _)| i)
        .collect();
    let mut seen: HashSet<usize> = HashSet::new();
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        inside.insert(i);
        for o in &nodes[i].output {
            for &r in readers.get(o.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                if nodes[r].op_type() != "LayerNormalization" {
                    stack.push(r);
                }
            }
        }
    }
    ScanRegion {
        nodes: inside
            .into_iter()
            .map(|i| nodes[i].name().to_string())
            .collect(),
    }
}

/// Whether the MatMul `node` computes the scan's parameters (`x_proj`: B, C and the step's
/// rank-R input; `dt_proj`: the step) from the official weight names.
pub(crate) fn is_scan_projection(graph: &Graph, node: &str) -> bool {
    graph.find_node(node).is_some_and(|n| {
        n.input
            .iter()
            .any(|i| i.ends_with("x_proj_weight") || i.ends_with("dt_projs_weight"))
    })
}
