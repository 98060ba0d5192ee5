//! float16 conversion with a precision policy that knows VM-UNet.
//!
//! Every node with float tensors runs in float16 except:
//! - the scan region ([`crate::scan_region`]): the selective scan's recurrence, its
//!   exponentials and softplus, and the merge of its four directions;
//! - `LayerNormalization` (its mean and variance), unless asked otherwise;
//! - nodes matched by `--keep-fp32` patterns;
//! - nodes whose output's calibrated range does not fit float16 (|x| above
//!   [`SAFE_MAX`], or every value below float16's smallest normal number), or that read a
//!   weight outside float16's range.
//!
//! `Cast` nodes sit at every border between the two precisions; initializers read by float16
//! nodes are stored in float16 (a float32 copy stays where float32 nodes read them too).

use std::collections::{BTreeMap, HashMap, HashSet};

use half::f16;
use serde_json::json;
use vmunet_onnx_ir::pb::{type_proto, NodeProto};
use vmunet_onnx_ir::{Attr, DataType, Model, Precision};

use crate::calib::{CalibrationSet, Stats};
use crate::policy::scan_region;
use crate::select::Selection;
use crate::types::{is_f32, value_types};
use crate::CompressError;

/// Largest |x| a float16 activation may reach in calibration (float16's maximum is 65504;
/// the margin leaves room for images brighter or stranger than the calibration set).
pub const SAFE_MAX: f32 = 8192.0;

/// Options of [`to_fp16`].
#[derive(Debug, Clone)]
pub struct Fp16Options {
    /// Node names or glob patterns to keep in float32 besides the policy.
    pub keep_fp32: Vec<String>,
    /// Keep the model's input and output float32 (a `Cast` after the input and before the
    /// output), so callers feed and read float32 as before.
    pub keep_io_fp32: bool,
    /// Keep `LayerNormalization` in float32 (the default).
    pub keep_layernorm_fp32: bool,
    /// Keep the scan region in float32 (the default).
    pub keep_scan_fp32: bool,
}

impl Default for Fp16Options {
    fn default() -> Self {
        Self {
            keep_fp32: Vec::new(),
            keep_io_fp32: false,
            keep_layernorm_fp32: true,
            keep_scan_fp32: true,
        }
    }
}

/// Why a node stayed float32.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepReason {
    /// The selective scan region (policy).
    Scan,
    /// A LayerNorm (policy).
    LayerNorm,
    /// Matched by a `--keep-fp32` pattern.
    Asked,
    /// Its output reached |x| = `abs_max` in calibration.
    Overflow {
        /// The largest |x| seen.
        abs_max: f32,
    },
    /// Every value of its output was below float16's smallest normal number.
    Underflow {
        /// The largest |x| seen.
        abs_max: f32,
    },
    /// It reads a weight beyond float16's range.
    Weight {
        /// The initializer.
        name: String,
    },
}

impl KeepReason {
    /// A short label (`scan`, `layernorm`, `asked`, `overflow`, `underflow`, `weight`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::LayerNorm => "layernorm",
            Self::Asked => "asked",
            Self::Overflow { .. } => "overflow",
            Self::Underflow { .. } => "underflow",
            Self::Weight { .. } => "weight",
        }
    }
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scan => f.write_str("selective scan (policy)"),
            Self::LayerNorm => f.write_str("LayerNorm statistics (policy)"),
            Self::Asked => f.write_str("--keep-fp32"),
            Self::Overflow { abs_max } => {
                write!(f, "output reached |x| = {abs_max:.4e} (overflows float16)")
            }
            Self::Underflow { abs_max } => write!(
                f,
                "output stays below |x| = {abs_max:.4e} (underflows float16)"
            ),
            Self::Weight { name } => write!(f, "weight `{name}` is beyond float16's range"),
        }
    }
}

/// What [`to_fp16`] did.
#[derive(Debug, Clone, Default)]
pub struct Fp16Report {
    /// Nodes kept in float32, in graph order, with the reason.
    pub kept: Vec<(String, KeepReason)>,
    /// Nodes that run in float16.
    pub half_nodes: usize,
    /// `Cast` nodes inserted.
    pub casts: usize,
    /// Initializers stored in float16.
    pub half_initializers: usize,
    /// Where the range check's images came from, and how many.
    pub calibration: String,
}

fn set_elem(vi: &mut vmunet_onnx_ir::pb::ValueInfoProto, t: DataType) {
    if let Some(type_proto::Value::TensorType(tt)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        tt.elem_type = Some(t as i32);
    }
}

fn cast_node(name: String, input: &str, output: &str, to: DataType) -> NodeProto {
    NodeProto {
        input: vec![input.to_string()],
        output: vec![output.to_string()],
        name: Some(name),
        op_type: Some("Cast".into()),
        attribute: vec![Attr::Int(to as i64).into_proto("to")],
        ..Default::default()
    }
}

/// Converts the float32 `model` to float16 under the policy; `calib` runs through the float32
/// model first to find values float16 cannot hold.
pub fn to_fp16(
    model: &Model,
    opts: &Fp16Options,
    calib: &CalibrationSet,
) -> Result<(Model, Fp16Report), CompressError> {
    crate::check_float32(model)?;
    let graph = &model.graph;
    let types = value_types(graph);
    let asked = Selection::resolve(graph, &opts.keep_fp32)?;
    let region = scan_region(graph);
    let inits: HashSet<&str> = graph.initializers().iter().map(|t| t.name()).collect();

    // Nodes that carry float tensors; the rest (shape arithmetic) are left as they are.
    let floaty = |n: &NodeProto| n.input.iter().chain(&n.output).any(|v| is_f32(&types, v));
    let mut keep: BTreeMap<String, KeepReason> = BTreeMap::new();
    for n in graph.nodes().iter().filter(|n| floaty(n)) {
        let reason = if opts.keep_scan_fp32 && region.contains(n.name()) {
            Some(KeepReason::Scan)
        } else if opts.keep_layernorm_fp32 && n.op_type() == "LayerNormalization" {
            Some(KeepReason::LayerNorm)
        } else if asked.contains(n.name()) {
            Some(KeepReason::Asked)
        } else if n.op_type() == "Scan" {
            // A loop body is never converted: its state is the scan's.
            Some(KeepReason::Scan)
        } else {
            n.input
                .iter()
                .filter(|i| inits.contains(i.as_str()) && is_f32(&types, i))
                .find(|i| {
                    graph
                        .initializer::<f32>(i)
                        .map(|(_, d)| d.iter().any(|v| v.abs() > f16::MAX.to_f32()))
                        .unwrap_or(false)
                })
                .map(|i| KeepReason::Weight { name: i.clone() })
        };
        if let Some(r) = reason {
            keep.insert(n.name().to_string(), r);
        }
    }

    // The range check: every float output of a node that would run in float16.
    let probed: Vec<String> = graph
        .nodes()
        .iter()
        .filter(|n| floaty(n) && !keep.contains_key(n.name()))
        .flat_map(|n| n.output.iter().filter(|o| is_f32(&types, o)).cloned())
        .collect();
    let stats = Stats::collect(model, &probed, calib, false)?;
    for n in graph.nodes() {
        if keep.contains_key(n.name()) || !floaty(n) {
            continue;
        }
        for o in &n.output {
            if let Some(s) = stats.get(o) {
                let a = s.abs_max();
                if s.nonfinite > 0 || a > SAFE_MAX {
                    keep.insert(n.name().to_string(), KeepReason::Overflow { abs_max: a });
                } else if a > 0.0 && a < f16::MIN_POSITIVE.to_f32() {
                    keep.insert(n.name().to_string(), KeepReason::Underflow { abs_max: a });
                }
            }
        }
    }

    let half_node =
        |n: &NodeProto| floaty(n) && !keep.contains_key(n.name()) && n.op_type() != "Cast";

    // Initializers: float16 for float16 readers; a float32 copy survives for float32 readers.
    let mut half_readers: HashMap<String, bool> = HashMap::new();
    let mut f32_readers: HashSet<String> = HashSet::new();
    for n in graph.nodes() {
        for i in n
            .input
            .iter()
            .filter(|i| inits.contains(i.as_str()) && is_f32(&types, i))
        {
            if half_node(n) {
                half_readers.insert(i.clone(), true);
            } else {
                f32_readers.insert(i.clone());
            }
        }
    }

    let mut out = model.clone();
    let mut report = Fp16Report {
        calibration: format!("{} ({} images)", calib.source, calib.len()),
        ..Default::default()
    };
    let mut half_init_name: HashMap<String, String> = HashMap::new();
    {
        let g = &mut out.graph;
        for name in half_readers.keys() {
            let (dims, data) = g.initializer::<f32>(name)?;
            let h: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
            if f32_readers.contains(name) {
                let copy = g.fresh(&format!("{name}/fp16"));
                g.add_initializer(&copy, &dims, &h)?;
                half_init_name.insert(name.clone(), copy);
            } else {
                g.set_initializer(name, &dims, &h)?;
                half_init_name.insert(name.clone(), name.clone());
            }
            report.half_initializers += 1;
        }
    }

    // Current element type of every float value as the rewrite goes.
    let mut current: HashMap<String, DataType> = HashMap::new();
    let input_names: Vec<String> = out
        .graph
        .inputs()
        .iter()
        .filter(|i| !inits.contains(i.name()))
        .map(|i| i.name().to_string())
        .collect();
    for i in &input_names {
        if is_f32(&types, i) {
            current.insert(
                i.clone(),
                if opts.keep_io_fp32 {
                    DataType::Float
                } else {
                    DataType::Float16
                },
            );
        }
    }
    let old_nodes = out.graph.nodes().to_vec();
    let mut nodes: Vec<NodeProto> = Vec::with_capacity(old_nodes.len() + 64);
    let mut casts: HashMap<(String, i32), String> = HashMap::new();
    for mut n in old_nodes {
        let to_half = half_node(&n);
        let target = if to_half {
            DataType::Float16
        } else {
            DataType::Float
        };
        if floaty(&n) {
            for slot in 0..n.input.len() {
                let v = n.input[slot].clone();
                if v.is_empty() || !is_f32(&types, &v) {
                    continue;
                }
                if inits.contains(v.as_str()) {
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
                        let c = out
                            .graph
                            .fresh(&format!("{v}/to_{}", if to_half { "fp16" } else { "fp32" }));
                        let name = out.graph.fresh(&format!("{v}/Cast"));
                        nodes.push(cast_node(name, &v, &c, target));
                        report.casts += 1;
                        casts.insert(key, c.clone());
                        c
                    }
                };
                n.input[slot] = c;
            }
            for o in n.output.iter().filter(|o| is_f32(&types, o)) {
                current.insert(o.clone(), target);
            }
            if to_half {
                report.half_nodes += 1;
            }
        }
        if n.op_type() == "Scan" || n.attribute.iter().any(|a| a.g.is_some()) {
            // Subgraphs read outer values only through the node's inputs in vmunet exports;
            // refuse anything else rather than leave a float16 value where float32 is read.
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
        }
        nodes.push(n);
    }

    // Graph outputs: float32 when asked (a final Cast), float16 otherwise where produced so.
    let outputs: Vec<String> = out
        .graph
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let mut output_types: HashMap<String, DataType> = HashMap::new();
    for o in &outputs {
        let cur = current.get(o).copied().unwrap_or(DataType::Float);
        if cur == DataType::Float16 && opts.keep_io_fp32 {
            let inner = out.graph.fresh(&format!("{o}/fp16"));
            for m in &mut nodes {
                for v in m.input.iter_mut().chain(m.output.iter_mut()) {
                    if v == o {
                        *v = inner.clone();
                    }
                }
            }
            let name = out.graph.fresh(&format!("{o}/Cast"));
            nodes.push(cast_node(name, &inner, o, DataType::Float));
            report.casts += 1;
            output_types.insert(o.clone(), DataType::Float);
        } else if types.get(o) == Some(&DataType::Float) {
            output_types.insert(o.clone(), cur);
        }
    }
    {
        let p = out.graph.proto_mut();
        p.node = nodes;
        p.value_info.clear();
        for vi in &mut p.input {
            if input_names.iter().any(|i| i == vi.name()) && is_f32(&types, vi.name()) {
                set_elem(
                    vi,
                    current.get(vi.name()).copied().unwrap_or(DataType::Float),
                );
            }
        }
        for vi in &mut p.output {
            if let Some(t) = output_types.get(vi.name()) {
                set_elem(vi, *t);
            }
        }
    }
    out.graph.check()?;
    report.kept = graph
        .nodes()
        .iter()
        .filter_map(|n| {
            keep.get(n.name())
                .map(|r| (n.name().to_string(), r.clone()))
        })
        .collect();

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
    params.insert("source_sha256".into(), json!(crate::model_sha256(model)));
    params.insert("keep_fp32".into(), json!(opts.keep_fp32));
    params.insert("keep_io_fp32".into(), json!(opts.keep_io_fp32));
    params.insert("kept_fp32".into(), json!(counts));
    params.insert("kept_fp32_auto".into(), json!(auto));
    params.insert("range_check".into(), json!(report.calibration));
    params.insert("half_nodes".into(), json!(report.half_nodes));
    params.insert("casts".into(), json!(report.casts));
    crate::record_step(&mut out, Precision::Fp16, "fp16", params)?;
    Ok((out, report))
}
