//! Structural checks on a decoded ONNX model before any runtime sees it.
//!
//! The checks are cheap (one pass over the graph, no shape inference) and catch what file
//! corruption usually produces once the protobuf still decodes: a node reading a value nobody
//! produces, an initializer whose bytes do not fill its dimensions, a constant index outside the
//! shape it indexes, a custom scan node with the wrong inputs. Back-ends index into these
//! tensors without checking (tract's `Gather` panics on an index out of range), so the model is
//! refused here with the file and the node named.

use std::collections::{HashMap, HashSet};

use vmunet_onnx_ir::pb::{GraphProto, NodeProto, TensorProto};
use vmunet_onnx_ir::{GraphError, Model, CUSTOM_DOMAIN, CUSTOM_OP};

/// What is wrong with a model that decodes but cannot be run safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelDefect {
    /// The graph has no nodes.
    #[error("its graph has no nodes")]
    NoNodes,
    /// A node has no operator type.
    #[error("node `{node}` has no operator type")]
    NoOpType {
        /// Node name.
        node: String,
    },
    /// The graph's wiring is broken: a value read before (or without) being defined, defined
    /// twice, a cycle, a graph output nothing produces (the contract crate's topological check).
    #[error("{0}")]
    Graph(#[from] GraphError),
    /// An initializer with an unusable header (type, dimensions, storage).
    #[error("initializer `{name}`: {reason}")]
    BadInitializer {
        /// Initializer name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An initializer whose data does not fill its declared dimensions.
    #[error(
        "initializer `{name}` declares {expected} {unit} for dimensions {dims:?} but holds {found}"
    )]
    InitializerSize {
        /// Initializer name.
        name: String,
        /// Declared dimensions.
        dims: Vec<i64>,
        /// Size the dimensions and type call for.
        expected: u64,
        /// Size found.
        found: u64,
        /// `bytes` or `values`.
        unit: &'static str,
    },
    /// A constant operand (index, shape, axis) that cannot be valid.
    #[error("node `{node}` ({op}): {reason}")]
    BadOperand {
        /// Node name.
        node: String,
        /// Operator type.
        op: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a decoded model; the first defect found is returned.
pub fn check_model(model: &Model) -> Result<(), ModelDefect> {
    let graph = model.graph.proto();
    if graph.node.is_empty() {
        return Err(ModelDefect::NoNodes);
    }
    model.graph.check()?;
    check_graph(graph)
}

/// A constant visible to the checks: its dimensions and, for small integer tensors, its values.
struct Const {
    dims: Vec<usize>,
    data_type: i32,
    ints: Option<Vec<i64>>,
}

/// Checks one graph's initializers, operator types and constant operands (the wiring is
/// checked by [`vmunet_onnx_ir::Graph::check`]); subgraphs (Scan / Loop / If bodies) included.
fn check_graph(graph: &GraphProto) -> Result<(), ModelDefect> {
    let mut consts: HashMap<&str, Const> = HashMap::new();
    for t in &graph.initializer {
        let dims = check_initializer(t)?;
        consts.insert(
            t.name(),
            Const {
                ints: int_values(t, &dims),
                dims,
                data_type: t.data_type(),
            },
        );
    }
    for node in &graph.node {
        let name = || {
            if node.name().is_empty() {
                format!("{} producing {:?}", node.op_type(), node.output)
            } else {
                node.name().to_string()
            }
        };
        if node.op_type().is_empty() {
            return Err(ModelDefect::NoOpType { node: name() });
        }
        for attr in &node.attribute {
            for g in attr.g.iter().chain(&attr.graphs) {
                check_graph(g)?;
            }
        }
        check_axis_attributes(node)
            .and_then(|()| check_operands(node, &consts))
            .map_err(|reason| ModelDefect::BadOperand {
                node: name(),
                op: node.op_type().to_string(),
                reason,
            })?;
    }
    Ok(())
}

/// Bits per element of an ONNX data type (`None`: unknown or variable-length).
fn element_bits(data_type: i32) -> Option<u64> {
    Some(match data_type {
        2 | 3 | 9 | 17..=20 => 8, // u8, i8, bool, float8 variants
        4 | 5 | 10 | 16 => 16,    // u16, i16, f16, bf16
        1 | 6 | 12 => 32,         // f32, i32, u32
        7 | 11 | 13 | 14 => 64,   // i64, f64, u64, complex64
        15 => 128,                // complex128
        21..=23 => 4,             // u4, i4, float4
        _ => return None,
    })
}

/// Checks an initializer's header and that its data fills its dimensions; returns the
/// dimensions.
fn check_initializer(t: &TensorProto) -> Result<Vec<usize>, ModelDefect> {
    let bad = |reason: String| ModelDefect::BadInitializer {
        name: t.name().to_string(),
        reason,
    };
    if t.name().is_empty() {
        return Err(bad("it has no name".into()));
    }
    let mut count: u64 = 1;
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| bad(format!("negative dimension in {:?}", t.dims)))?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| bad(format!("dimensions {:?} overflow", t.dims)))?;
        dims.push(usize::try_from(d).map_err(|_| bad(format!("dimension {d} is too large")))?);
    }
    if t.data_location == Some(1) {
        // External data: the runtime reads (and checks) the side file.
        return Ok(dims);
    }
    if t.data_type() == 8 {
        let found = t.string_data.len() as u64;
        if found != count {
            return Err(ModelDefect::InitializerSize {
                name: t.name().to_string(),
                dims: t.dims.clone(),
                expected: count,
                found,
                unit: "values",
            });
        }
        return Ok(dims);
    }
    let bits = element_bits(t.data_type())
        .ok_or_else(|| bad(format!("unknown data type {}", t.data_type())))?;
    if !t.raw_data().is_empty() || count == 0 {
        let expected = count
            .checked_mul(bits)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| bad(format!("dimensions {:?} overflow", t.dims)))?;
        let found = t.raw_data().len() as u64;
        if found != expected {
            return Err(ModelDefect::InitializerSize {
                name: t.name().to_string(),
                dims: t.dims.clone(),
                expected,
                found,
                unit: "bytes",
            });
        }
        return Ok(dims);
    }
    // Typed storage: which repeated field holds the values, and how many it must hold.
    let (found, expected) = match t.data_type() {
        1 => (t.float_data.len(), count),
        14 => (t.float_data.len(), count.saturating_mul(2)),
        11 => (t.double_data.len(), count),
        15 => (t.double_data.len(), count.saturating_mul(2)),
        7 => (t.int64_data.len(), count),
        12 | 13 => (t.uint64_data.len(), count),
        21..=23 => (t.int32_data.len(), count.div_ceil(2)),
        _ => (t.int32_data.len(), count),
    };
    if found as u64 != expected {
        return Err(ModelDefect::InitializerSize {
            name: t.name().to_string(),
            dims: t.dims.clone(),
            expected,
            found: found as u64,
            unit: "values",
        });
    }
    Ok(dims)
}

/// The values of a small int32/int64 initializer (indices, shapes, axes), already size-checked.
fn int_values(t: &TensorProto, dims: &[usize]) -> Option<Vec<i64>> {
    let count: usize = dims.iter().product();
    if count > 1 << 16 {
        return None;
    }
    match t.data_type() {
        7 if !t.raw_data().is_empty() => Some(
            t.raw_data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        7 => Some(t.int64_data.clone()),
        6 if !t.raw_data().is_empty() => Some(
            t.raw_data()
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        6 => Some(t.int32_data.iter().map(|&v| v as i64).collect()),
        _ => None,
    }
}

/// Highest tensor rank an axis attribute may address. ONNX sets no limit, but no operator of a
/// real model comes near it, and back-ends loop or index on these values unchecked (tract spins
/// on a LayerNormalization `axis` of `i64::MAX`).
const MAX_RANK: i64 = 32;

/// Axis-valued attributes (`axis`, `axes`, `perm`) of any operator stay within [`MAX_RANK`];
/// their exact range needs shapes the checks do not infer.
fn check_axis_attributes(node: &NodeProto) -> Result<(), String> {
    for a in &node.attribute {
        let values: &[i64] = match a.name() {
            "axis" => std::slice::from_ref(a.i.as_ref().unwrap_or(&0)),
            "axes" | "perm" => &a.ints,
            _ => continue,
        };
        if let Some(v) = values.iter().find(|v| !(-MAX_RANK..MAX_RANK).contains(*v)) {
            return Err(format!(
                "attribute `{}` holds {v}, outside any tensor rank up to {MAX_RANK}",
                a.name()
            ));
        }
    }
    Ok(())
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute
        .iter()
        .find(|a| a.name() == name)
        .map(|a| a.i())
}

/// Resolves a possibly negative axis against `rank`.
fn axis(value: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if (-r..r).contains(&value) {
        Ok(if value < 0 { value + r } else { value } as usize)
    } else {
        Err(format!("axis {value} is outside a rank-{rank} tensor"))
    }
}

/// Checks the constant operands of the operators whose back-end kernels index with them.
fn check_operands(node: &NodeProto, consts: &HashMap<&str, Const>) -> Result<(), String> {
    let konst = |i: usize| {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| consts.get(n.as_str()))
    };
    match (node.domain(), node.op_type()) {
        ("" | "ai.onnx", "Gather") => {
            if node.input.len() != 2 {
                return Err(format!("takes 2 inputs, has {}", node.input.len()));
            }
            let (Some(data), Some(idx)) = (konst(0), konst(1)) else {
                return Ok(());
            };
            let ax = axis(attr_int(node, "axis").unwrap_or(0), data.dims.len())?;
            let len = data.dims[ax] as i64;
            if let Some(bad) = idx.ints.iter().flatten().find(|&&i| i < -len || i >= len) {
                return Err(format!("index {bad} is outside axis {ax} of length {len}"));
            }
            Ok(())
        }
        ("" | "ai.onnx", "Reshape") => {
            if node.input.len() != 2 {
                return Err(format!("takes 2 inputs, has {}", node.input.len()));
            }
            let Some(shape) = konst(1) else {
                return Ok(());
            };
            if shape.dims.len() != 1 {
                return Err(format!(
                    "shape operand has rank {}, not 1",
                    shape.dims.len()
                ));
            }
            if shape.data_type != 7 {
                return Err("shape operand is not int64".into());
            }
            let Some(values) = &shape.ints else {
                return Ok(());
            };
            if let Some(v) = values.iter().find(|&&v| v < -1) {
                return Err(format!("shape {values:?} holds {v}"));
            }
            if values.iter().filter(|&&v| v == -1).count() > 1 {
                return Err(format!("shape {values:?} has more than one -1"));
            }
            if let Some(data) = konst(0) {
                if !values.contains(&-1) && !values.contains(&0) {
                    let from: usize = data.dims.iter().product();
                    let to = values
                        .iter()
                        .try_fold(1usize, |a, &v| a.checked_mul(v as usize));
                    if to != Some(from) {
                        return Err(format!(
                            "cannot reshape {:?} ({from} values) to {values:?}",
                            data.dims
                        ));
                    }
                }
            }
            Ok(())
        }
        ("" | "ai.onnx", "Slice") => {
            if !(3..=5).contains(&node.input.len()) {
                return Err(format!("takes 3 to 5 inputs, has {}", node.input.len()));
            }
            let operands: Vec<Option<&Const>> = (1..node.input.len()).map(konst).collect();
            let mut len = None;
            for (k, c) in operands.iter().enumerate() {
                let Some(c) = c else { continue };
                let what = ["starts", "ends", "axes", "steps"][k];
                if c.dims.len() != 1 {
                    return Err(format!("{what} has rank {}, not 1", c.dims.len()));
                }
                if c.data_type != 6 && c.data_type != 7 {
                    return Err(format!("{what} is not int32/int64"));
                }
                let Some(values) = &c.ints else {
                    continue;
                };
                if *len.get_or_insert(values.len()) != values.len() {
                    return Err("starts, ends, axes and steps differ in length".into());
                }
                if what == "steps" && values.contains(&0) {
                    return Err(format!("steps {values:?} hold 0"));
                }
                if what == "axes" {
                    let mut seen = HashSet::new();
                    if let Some(data) = konst(0) {
                        for &a in values {
                            if !seen.insert(axis(a, data.dims.len())?) {
                                return Err(format!("axes {values:?} repeat an axis"));
                            }
                        }
                    } else if values.iter().any(|&a| !seen.insert(a as usize)) {
                        return Err(format!("axes {values:?} repeat an axis"));
                    }
                }
            }
            Ok(())
        }
        (CUSTOM_DOMAIN, CUSTOM_OP) => check_selective_scan(node, consts),
        _ => Ok(()),
    }
}

/// The custom scan: six float inputs `(u, delta, x_dbl, A, D, delta_bias)`, one output, no
/// attributes; the parameters `A (4 D, S)`, `D (4 D)` and `delta_bias (4 D)` agree when they
/// are constants.
fn check_selective_scan(node: &NodeProto, consts: &HashMap<&str, Const>) -> Result<(), String> {
    if node.input.len() != vmunet_onnx_ir::CUSTOM_OP_INPUTS
        || node.input.iter().any(String::is_empty)
    {
        return Err(format!(
            "takes 6 inputs (u, delta, x_dbl, A, D, delta_bias), has {:?}",
            node.input
        ));
    }
    if node.output.len() != 1 {
        return Err(format!("has one output, not {}", node.output.len()));
    }
    if let Some(a) = node.attribute.first() {
        return Err(format!("takes no attributes, has `{}`", a.name()));
    }
    let c = |i: usize| consts.get(node.input[i].as_str());
    if let Some(a) = c(3) {
        if a.dims.len() != 2 || a.dims[0] == 0 || a.dims[0] % 4 != 0 || a.dims[1] == 0 {
            return Err(format!("A has shape {:?}, expected (4 D, S)", a.dims));
        }
        for (i, what) in [(4, "D"), (5, "delta_bias")] {
            if let Some(v) = c(i) {
                if v.dims != [a.dims[0]] {
                    return Err(format!(
                        "{what} has shape {:?}, expected [{}] to match A {:?}",
                        v.dims, a.dims[0], a.dims
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> Model {
        Model::read(&vmunet_testdata::golden(name)).expect("golden file decodes")
    }

    #[test]
    fn golden_models_pass() {
        for f in ["tiny-scan.onnx", "tiny-custom.onnx", "tiny-chunked.onnx"] {
            check_model(&golden(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn renamed_input_is_undefined() {
        let mut m = golden("tiny-scan.onnx");
        let g = m.graph.proto_mut();
        g.node[3].input[0] = "nowhere".into();
        assert!(matches!(
            check_model(&m),
            Err(ModelDefect::Graph(GraphError::UndefinedInput { input, .. })) if input == "nowhere"
        ));
    }

    #[test]
    fn short_initializer_is_refused() {
        let mut m = golden("tiny-scan.onnx");
        let g = m.graph.proto_mut();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.raw_data().len() > 8)
            .unwrap();
        let raw = t.raw_data.as_mut().unwrap();
        raw.truncate(raw.len() - 4);
        assert!(matches!(
            check_model(&m),
            Err(ModelDefect::InitializerSize { unit: "bytes", .. })
        ));
    }

    #[test]
    fn gather_index_out_of_range_is_refused() {
        let mut m = golden("tiny-scan.onnx");
        let g = m.graph.proto_mut();
        // Make a Gather read constant data with an index past its end.
        let gather = g.node.iter().position(|n| n.op_type() == "Gather").unwrap();
        let idx = g.node[gather].input[1].clone();
        let t = g.initializer.iter_mut().find(|t| t.name() == idx).unwrap();
        t.raw_data.as_mut().unwrap()[..8].copy_from_slice(&5000i64.to_le_bytes());
        g.node[gather].input[0] = idx.clone();
        g.node[gather].attribute.clear();
        let err = check_model(&m).unwrap_err();
        assert!(
            matches!(&err, ModelDefect::BadOperand { reason, .. } if reason.contains("5000")),
            "{err}"
        );
    }

    /// A bit flip that turned a LayerNormalization axis into `i64::MAX` made tract spin.
    #[test]
    fn absurd_axis_attribute_is_refused() {
        let mut m = golden("tiny-scan.onnx");
        let g = m.graph.proto_mut();
        let ln = g
            .node
            .iter_mut()
            .find(|n| n.op_type() == "LayerNormalization")
            .unwrap();
        let axis = ln
            .attribute
            .iter_mut()
            .find(|a| a.name() == "axis")
            .unwrap();
        axis.i = Some(i64::MAX);
        let err = check_model(&m).unwrap_err();
        assert!(
            matches!(&err, ModelDefect::BadOperand { op, reason, .. }
                if op == "LayerNormalization" && reason.contains("axis")),
            "{err}"
        );
    }

    #[test]
    fn reshape_with_two_free_dims_is_refused() {
        let mut m = golden("tiny-scan.onnx");
        let g = m.graph.proto_mut();
        let r = g
            .node
            .iter()
            .position(|n| n.op_type() == "Reshape")
            .unwrap();
        let shape = g.node[r].input[1].clone();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name() == shape)
            .unwrap();
        t.raw_data = Some(
            [-1i64, -1, 16]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert!(matches!(
            check_model(&m),
            Err(ModelDefect::BadOperand { op, .. }) if op == "Reshape"
        ));
    }

    #[test]
    fn custom_scan_with_wrong_parameter_shape_is_refused() {
        let mut m = golden("tiny-custom.onnx");
        let g = m.graph.proto_mut();
        let n = g
            .node
            .iter()
            .find(|n| n.op_type() == CUSTOM_OP)
            .unwrap()
            .clone();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name() == n.input[4])
            .unwrap();
        t.dims = vec![t.dims[0] / 2, 2];
        assert!(matches!(
            check_model(&m),
            Err(ModelDefect::BadOperand { reason, .. }) if reason.starts_with("D has shape")
        ));
    }
}
