//! The nodes: float16 nodes read float16 initializers, and a `Cast` sits at every border
//! between the two precisions (one per value and direction).

use std::collections::{HashMap, HashSet};

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Attr, DataType, Graph};

use super::floats::Floats;
use super::options::Fp16Report;
use crate::CompressError;

/// A `Cast` of `input` to `to` named `name`, writing `output`.
pub(super) fn cast_node(name: String, input: &str, output: &str, to: DataType) -> NodeProto {
    NodeProto {
        input: vec![input.to_string()],
        output: vec![output.to_string()],
        name: Some(name),
        op_type: Some("Cast".into()),
        attribute: vec![Attr::Int(to as i64).into_proto("to")],
        ..Default::default()
    }
}

/// The nodes of `out` with their float inputs cast to the precision they run in (float16
/// for `half` nodes, whose initializers are read under `half_init_name`) and the casts
/// inserted before them. `current` holds the element type of every float value so far (the
/// graph inputs' on entry) and is updated with the nodes' outputs.
pub(super) fn insert_casts(
    out: &mut Graph,
    floats: &Floats,
    half: impl Fn(&NodeProto) -> bool,
    half_init_name: &HashMap<String, String>,
    current: &mut HashMap<String, DataType>,
    report: &mut Fp16Report,
) -> Result<Vec<NodeProto>, CompressError> {
    let old_nodes = out.nodes().to_vec();
    let mut nodes: Vec<NodeProto> = Vec::with_capacity(old_nodes.len() + 64);
    let mut casts: HashMap<(String, i32), String> = HashMap::new();
    for mut n in old_nodes {
        let to_half = half(&n);
        let target = if to_half {
            DataType::Float16
        } else {
            DataType::Float
        };
        if floats.floaty(&n) {
            for slot in 0..n.input.len() {
                let v = n.input[slot].clone();
                if v.is_empty() || !floats.is_f32(&v) {
                    continue;
                }
                if floats.inits.contains(v.as_str()) {
                    if to_half {
                        n.input[slot] = half_init_name[&v].clone();
                    }
                    continue;
                }
                let cur = current.get(&v).copied().unwrap_or(DataType::Float);
                if cur == target {
                    continue;
                }
                let key = (v.clone(), target as i32);
                let c = match casts.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let c =
                            out.fresh(&format!("{v}/to_{}", if to_half { "fp16" } else { "fp32" }));
                        let name = out.fresh(&format!("{v}/Cast"));
                        nodes.push(cast_node(name, &v, &c, target));
                        report.casts += 1;
                        casts.insert(key, c.clone());
                        c
                    }
                };
                n.input[slot] = c;
            }
            for o in n.output.iter().filter(|o| floats.is_f32(o)) {
                current.insert(o.clone(), target);
            }
            if to_half {
                report.half_nodes += 1;
            }
        }
        check_subgraphs(&n, current)?;
        nodes.push(n);
    }
    Ok(nodes)
}

/// Subgraphs read outer values only through the node's inputs in vmunet exports; refuses
/// anything else rather than leave a float16 value where float32 is read.
fn check_subgraphs(
    n: &NodeProto,
    current: &HashMap<String, DataType>,
) -> Result<(), CompressError> {
    if !(n.op_type() == "Scan" || n.attribute.iter().any(|a| a.g.is_some())) {
        return Ok(());
    }
    for a in n.attribute.iter().filter_map(|a| a.g.as_ref()) {
        let defined: HashSet<&str> = a
            .input
            .iter()
            .map(|v| v.name())
            .chain(a.initializer.iter().map(|t| t.name()))
            .chain(
                a.node
                    .iter()
                    .flat_map(|m| m.output.iter().map(String::as_str)),
            )
            .collect();
        if let Some(v) = a.node.iter().flat_map(|m| m.input.iter()).find(|v| {
            !v.is_empty()
                && !defined.contains(v.as_str())
                && current.get(*v) == Some(&DataType::Float16)
        }) {
            return Err(CompressError::Unsupported(format!(
                "node `{}` has a subgraph that reads the float16 value `{v}` from the outer graph",
                n.name()
            )));
        }
    }
    Ok(())
}
