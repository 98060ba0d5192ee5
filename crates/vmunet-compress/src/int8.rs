//! int8 post-training quantisation of `Conv` and `MatMul` nodes with constant weights.
//!
//! - Weights: symmetric, per output channel (Conv: axis 0; MatMul `[K, N]`: per column),
//!   int8 in [-127, 127] ([-63, 63] with `reduce_range`).
//! - Activations (the node's input and output): per tensor, from calibrated ranges
//!   ([`crate::calib`]); int8 or uint8, asymmetric or symmetric (zero point 0 for int8:
//!   TensorRT's requirement).
//! - Biases (Conv): int32 at scale `x_scale * w_scale[c]`.
//!
//! Two forms: **QDQ** (`QuantizeLinear`/`DequantizeLinear` around float ops, which ONNX Runtime
//! and TensorRT fuse into integer kernels) and **QOperator** (`QLinearConv`, `QLinearMatMul`,
//! with `DequantizeLinear` back to float for the ops around them: tract's integer kernels).
//! The dynamic mode needs no calibration: int8 weights only (QDQ), or `DynamicQuantizeLinear`
//! + `MatMulInteger` (QOperator).
//!
//! By default the scan region, the projections that compute the scan's parameters (`x_proj`,
//! `dt_proj`) and the layer that produces the model's output stay float.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::json;
use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Attr, Graph, Model, Precision};

use crate::calib::{CalibrationSet, Method, Stats};
use crate::policy::{is_scan_projection, scan_region};
use crate::select::Selection;
use crate::CompressError;

/// Graph form of the quantised model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// QuantizeLinear/DequantizeLinear pairs (ONNX Runtime CPU/CUDA, TensorRT).
    Qdq,
    /// QLinearConv / QLinearMatMul (tract's integer kernels).
    QOperator,
}

impl Format {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qdq => "qdq",
            Self::QOperator => "qoperator",
        }
    }
}

/// Element type of quantised activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationType {
    /// int8 (S8S8 with int8 weights).
    S8,
    /// uint8 (U8S8; may saturate on x86 without VNNI unless `reduce_range`).
    U8,
}

impl ActivationType {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::S8 => "s8",
            Self::U8 => "u8",
        }
    }
}

/// Options of [`quantize`].
#[derive(Debug, Clone)]
pub struct Int8Options {
    /// Graph form.
    pub format: Format,
    /// Calibration method for activation ranges.
    pub method: Method,
    /// Node names or patterns to keep float.
    pub exclude: Vec<String>,
    /// Dynamic mode: no calibration (QDQ: int8 weights only; QOperator: activations
    /// quantised at run time by `DynamicQuantizeLinear`).
    pub dynamic: bool,
    /// Activation element type.
    pub activation_type: ActivationType,
    /// Zero point 0 for activations (TensorRT).
    pub symmetric_activations: bool,
    /// 7-bit weights (avoids U8S8 saturation on x86 without VNNI).
    pub reduce_range: bool,
    /// Also quantise the activations of `x_proj` and `dt_proj` (the scan's parameters);
    /// by default only their weights are stored in int8 and they compute in float.
    pub quantize_scan_projections: bool,
    /// Store the float constants that stay float (the scan's `A`, `D`, biases, norms) as
    /// float16, widened by a `Cast` that runtimes fold at load (the default).
    pub fp16_constants: bool,
    /// Also quantise the layer producing the model's output.
    pub quantize_output_layer: bool,
    /// Quantise only these nodes (the sensitivity analysis; `None`: every candidate).
    pub only: Option<BTreeSet<String>>,
}

impl Default for Int8Options {
    fn default() -> Self {
        Self {
            format: Format::Qdq,
            method: Method::MinMax,
            exclude: Vec::new(),
            dynamic: false,
            activation_type: ActivationType::S8,
            symmetric_activations: false,
            reduce_range: false,
            quantize_scan_projections: false,
            fp16_constants: true,
            quantize_output_layer: false,
            only: None,
        }
    }
}

/// What [`quantize`] did.
#[derive(Debug, Clone, Default)]
pub struct Int8Report {
    /// Quantised nodes, in graph order.
    pub quantized: Vec<String>,
    /// Nodes whose weights only are int8 (they compute in float).
    pub weight_only: Vec<String>,
    /// Float constants stored as float16.
    pub fp16_constants: usize,
    /// Candidates (Conv/MatMul with constant weights) kept float, with the reason.
    pub excluded: Vec<(String, String)>,
    /// Calibration source and image count (empty in dynamic mode).
    pub calibration: String,
}

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

/// Quantisation parameters of one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point (in the activation type's range).
    pub zero_point: i32,
}

/// Activation parameters for the range `[lo, hi]` (containing 0).
pub fn activation_params(lo: f32, hi: f32, ty: ActivationType, symmetric: bool) -> QParams {
    let (qmin, qmax) = match ty {
        ActivationType::S8 => (-128i32, 127i32),
        ActivationType::U8 => (0, 255),
    };
    let amax = lo.abs().max(hi.abs());
    if symmetric {
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        let zero_point = match ty {
            ActivationType::S8 => 0,
            ActivationType::U8 => 128,
        };
        return QParams { scale, zero_point };
    }
    let span = hi - lo;
    if span <= 0.0 {
        return QParams {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let scale = span / (qmax - qmin) as f32;
    let zero_point = ((qmin as f32) - lo / scale).round() as i32;
    QParams {
        scale,
        zero_point: zero_point.clamp(qmin, qmax),
    }
}

/// Symmetric per-channel int8 weights: the quantised values and one scale per channel.
/// `axis` 0: channels are the outer dimension (Conv `[M, ...]`); axis 1 of a 2-D `[K, N]`:
/// channels are the columns.
pub fn quantize_weights(
    dims: &[usize],
    data: &[f32],
    axis: usize,
    qmax: i32,
) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis];
    let mut amax = vec![0f32; channels];
    let ch = |i: usize| -> usize {
        if axis == 0 {
            i / (data.len() / channels.max(1))
        } else {
            i % channels
        }
    };
    for (i, &w) in data.iter().enumerate() {
        let c = ch(i);
        amax[c] = amax[c].max(w.abs());
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&a| if a > 0.0 { a / qmax as f32 } else { 1.0 })
        .collect();
    let q = data
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            (w / scales[ch(i)])
                .round()
                .clamp(-(qmax as f32), qmax as f32) as i8
        })
        .collect();
    (q, scales)
}

fn node(
    name: String,
    op: &str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<(&str, Attr)>,
) -> NodeProto {
    NodeProto {
        input: inputs,
        output: outputs,
        name: Some(name),
        op_type: Some(op.to_string()),
        attribute: attrs.into_iter().map(|(k, v)| v.into_proto(k)).collect(),
        ..Default::default()
    }
}

/// Adds a scalar zero point of the activation type.
fn zero_point(
    g: &mut Graph,
    hint: &str,
    ty: ActivationType,
    v: i32,
) -> Result<String, CompressError> {
    let name = g.fresh(hint);
    match ty {
        ActivationType::S8 => g.add_initializer(&name, &[], &[v as i8])?,
        ActivationType::U8 => g.add_initializer(&name, &[], &[v as u8])?,
    };
    Ok(name)
}

/// A quantised activation available in the graph: its integer value, scale and zero point.
#[derive(Clone)]
struct QValue {
    q: String,
    scale: String,
    zp: String,
}

struct Rewriter<'a> {
    opts: &'a Int8Options,
    stats: Option<&'a Stats>,
    nodes: Vec<NodeProto>,
    /// Float value -> its quantised form (QOperator) or its dequantised value (QDQ).
    quantized: HashMap<String, QValue>,
    dequantized: HashMap<String, String>,
}

impl Rewriter<'_> {
    fn params(&self, value: &str) -> Result<QParams, CompressError> {
        let s = self.stats.and_then(|s| s.get(value)).ok_or_else(|| {
            CompressError::Unsupported(format!("no calibration data for `{value}`"))
        })?;
        let (lo, hi) = s.range(self.opts.method);
        Ok(activation_params(
            lo,
            hi,
            self.opts.activation_type,
            self.opts.symmetric_activations,
        ))
    }

    /// The scale and zero-point initializers of activation `value`, from its calibrated range.
    fn scale_and_zero_point(
        &self,
        g: &mut Graph,
        value: &str,
    ) -> Result<(String, String), CompressError> {
        let p = self.params(value)?;
        let scale = g.fresh(&format!("{value}/scale"));
        g.add_initializer(&scale, &[], &[p.scale])?;
        let zp = zero_point(
            g,
            &format!("{value}/zero_point"),
            self.opts.activation_type,
            p.zero_point,
        )?;
        Ok((scale, zp))
    }

    /// The quantised form of float `value` (a QuantizeLinear node, made once).
    fn quantize_value(&mut self, g: &mut Graph, value: &str) -> Result<QValue, CompressError> {
        if let Some(q) = self.quantized.get(value) {
            return Ok(q.clone());
        }
        let (scale, zp) = self.scale_and_zero_point(g, value)?;
        let q = g.fresh(&format!("{value}/q"));
        let name = g.fresh(&format!("{value}/QuantizeLinear"));
        self.nodes.push(node(
            name,
            "QuantizeLinear",
            vec![value.into(), scale.clone(), zp.clone()],
            vec![q.clone()],
            vec![],
        ));
        let qv = QValue { q, scale, zp };
        self.quantized.insert(value.to_string(), qv.clone());
        Ok(qv)
    }

    /// QDQ: the dequantised copy of float `value` (Q then DQ, made once).
    fn qdq_value(&mut self, g: &mut Graph, value: &str) -> Result<String, CompressError> {
        if let Some(d) = self.dequantized.get(value) {
            return Ok(d.clone());
        }
        let qv = self.quantize_value(g, value)?;
        let dq = g.fresh(&format!("{value}/dq"));
        let name = g.fresh(&format!("{value}/DequantizeLinear"));
        self.nodes.push(node(
            name,
            "DequantizeLinear",
            vec![qv.q, qv.scale, qv.zp],
            vec![dq.clone()],
            vec![],
        ));
        self.dequantized.insert(value.to_string(), dq.clone());
        Ok(dq)
    }

    /// int8 weights of node `n` (input 1): initializer names of the values, per-channel scales
    /// and zero points, and the scales themselves.
    fn weights(
        &mut self,
        g: &mut Graph,
        n: &NodeProto,
    ) -> Result<(String, String, String, Vec<f32>, usize), CompressError> {
        let w = &n.input[1];
        let (dims, data) = g.initializer::<f32>(w)?;
        let axis = if n.op_type() == "Conv" { 0 } else { 1 };
        let qmax = if self.opts.reduce_range { 63 } else { 127 };
        let (q, scales) = quantize_weights(&dims, &data, axis, qmax);
        let qn = g.fresh(&format!("{w}/int8"));
        g.add_initializer(&qn, &dims, &q)?;
        let sn = g.fresh(&format!("{w}/scale"));
        g.add_initializer(&sn, &[scales.len()], &scales)?;
        let zn = g.fresh(&format!("{w}/zero_point"));
        g.add_initializer(&zn, &[scales.len()], &vec![0i8; scales.len()])?;
        Ok((qn, sn, zn, scales, axis))
    }

    /// Conv bias as int32 at scale `x_scale * w_scale[c]`.
    fn bias(
        &mut self,
        g: &mut Graph,
        bias: &str,
        x_scale: f32,
        w_scales: &[f32],
    ) -> Result<(String, String), CompressError> {
        let (dims, b) = g.initializer::<f32>(bias)?;
        let scales: Vec<f32> = w_scales.iter().map(|&s| s * x_scale).collect();
        let q: Vec<i32> = b
            .iter()
            .zip(&scales)
            .map(|(&v, &s)| (v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
            .collect();
        let qn = g.fresh(&format!("{bias}/int32"));
        g.add_initializer(&qn, &dims, &q)?;
        let sn = g.fresh(&format!("{bias}/scale"));
        g.add_initializer(&sn, &[scales.len()], &scales)?;
        Ok((qn, sn))
    }

    fn scale_of(&self, g: &Graph, name: &str) -> Result<f32, CompressError> {
        Ok(g.initializer::<f32>(name)?.1[0])
    }

    fn qdq(&mut self, g: &mut Graph, mut n: NodeProto) -> Result<(), CompressError> {
        let (wq, ws, wz, w_scales, axis) = self.weights(g, &n)?;
        let wd = g.fresh(&format!("{}/dq", n.input[1]));
        let name = g.fresh(&format!("{}/DequantizeLinear", n.input[1]));
        self.nodes.push(node(
            name,
            "DequantizeLinear",
            vec![wq, ws, wz],
            vec![wd.clone()],
            vec![("axis", Attr::Int(axis as i64))],
        ));
        n.input[1] = wd;
        if self.opts.dynamic {
            self.nodes.push(n);
            return Ok(());
        }
        let x = n.input[0].clone();
        let xd = self.qdq_value(g, &x)?;
        n.input[0] = xd;
        if n.op_type() == "Conv" && n.input.len() > 2 && !n.input[2].is_empty() {
            let x_scale = self.scale_of(g, &self.quantized[&x].scale.clone())?;
            let (bq, bs) = self.bias(g, &n.input[2].clone(), x_scale, &w_scales)?;
            let bd = g.fresh(&format!("{}/dq", n.input[2]));
            let name = g.fresh(&format!("{}/DequantizeLinear", n.input[2]));
            self.nodes.push(node(
                name,
                "DequantizeLinear",
                vec![bq, bs],
                vec![bd.clone()],
                vec![("axis", Attr::Int(0))],
            ));
            n.input[2] = bd;
        }
        // The output: computed into a private name, then Q/DQ back onto the original name so
        // every reader sees the dequantised value.
        let y = n.output[0].clone();
        let raw = g.fresh(&format!("{y}/float"));
        n.output[0] = raw.clone();
        self.nodes.push(n);
        let (scale, zp) = self.scale_and_zero_point(g, &y)?;
        let q = g.fresh(&format!("{y}/q"));
        let qn = g.fresh(&format!("{y}/QuantizeLinear"));
        self.nodes.push(node(
            qn,
            "QuantizeLinear",
            vec![raw, scale.clone(), zp.clone()],
            vec![q.clone()],
            vec![],
        ));
        let dqn = g.fresh(&format!("{y}/DequantizeLinear"));
        self.nodes.push(node(
            dqn,
            "DequantizeLinear",
            vec![q.clone(), scale.clone(), zp.clone()],
            vec![y.clone()],
            vec![],
        ));
        self.quantized.insert(y.clone(), QValue { q, scale, zp });
        self.dequantized.insert(y.clone(), y);
        Ok(())
    }

    fn qoperator(&mut self, g: &mut Graph, n: NodeProto) -> Result<(), CompressError> {
        let (wq, ws, wz, w_scales, _) = self.weights(g, &n)?;
        let x = n.input[0].clone();
        let y = n.output[0].clone();
        if self.opts.dynamic {
            // DynamicQuantizeLinear (uint8) -> MatMulInteger -> float * x_scale * w_scale.
            let xq = g.fresh(&format!("{x}/q"));
            let xs = g.fresh(&format!("{x}/scale"));
            let xz = g.fresh(&format!("{x}/zero_point"));
            let name = g.fresh(&format!("{x}/DynamicQuantizeLinear"));
            self.nodes.push(node(
                name,
                "DynamicQuantizeLinear",
                vec![x.clone()],
                vec![xq.clone(), xs.clone(), xz.clone()],
                vec![],
            ));
            let acc = g.fresh(&format!("{y}/int32"));
            let name = g.fresh(&format!("{}/MatMulInteger", n.name()));
            self.nodes.push(node(
                name,
                "MatMulInteger",
                vec![xq, wq, xz, wz],
                vec![acc.clone()],
                vec![],
            ));
            let f = g.fresh(&format!("{y}/float"));
            let name = g.fresh(&format!("{y}/Cast"));
            self.nodes.push(node(
                name,
                "Cast",
                vec![acc],
                vec![f.clone()],
                vec![("to", Attr::Int(vmunet_onnx_ir::DataType::Float as i64))],
            ));
            let fx = g.fresh(&format!("{y}/x_scaled"));
            let name = g.fresh(&format!("{y}/Mul"));
            self.nodes
                .push(node(name, "Mul", vec![f, xs], vec![fx.clone()], vec![]));
            let name = g.fresh(&format!("{y}/Mul"));
            self.nodes
                .push(node(name, "Mul", vec![fx, ws], vec![y], vec![]));
            let _ = w_scales;
            return Ok(());
        }
        let xv = self.quantize_value(g, &x)?;
        let (ys, yz) = self.scale_and_zero_point(g, &y)?;
        let yq = g.fresh(&format!("{y}/q"));
        let mut inputs = vec![
            xv.q.clone(),
            xv.scale.clone(),
            xv.zp.clone(),
            wq,
            ws,
            wz,
            ys.clone(),
            yz.clone(),
        ];
        let op = if n.op_type() == "Conv" {
            if n.input.len() > 2 && !n.input[2].is_empty() {
                let x_scale = self.scale_of(g, &xv.scale)?;
                let (bq, _) = self.bias(g, &n.input[2].clone(), x_scale, &w_scales)?;
                inputs.push(bq);
            }
            "QLinearConv"
        } else {
            "QLinearMatMul"
        };
        let attrs = if op == "QLinearConv" {
            n.attribute.clone()
        } else {
            vec![]
        };
        let name = g.fresh(&format!("{}/{op}", n.name()));
        let mut qn = node(name, op, inputs, vec![yq.clone()], vec![]);
        qn.attribute = attrs;
        self.nodes.push(qn);
        let name = g.fresh(&format!("{y}/DequantizeLinear"));
        self.nodes.push(node(
            name,
            "DequantizeLinear",
            vec![yq.clone(), ys.clone(), yz.clone()],
            vec![y.clone()],
            vec![],
        ));
        self.quantized.insert(
            y,
            QValue {
                q: yq,
                scale: ys,
                zp: yz,
            },
        );
        Ok(())
    }
}

/// Rewrites `nodes` of the float32 `model` with the calibrated `stats` (unused in dynamic
/// mode); initializers no longer read are dropped.
pub fn apply(
    model: &Model,
    nodes: &[String],
    weight_only: &[String],
    stats: Option<&Stats>,
    opts: &Int8Options,
) -> Result<Model, CompressError> {
    let mut out = model.clone();
    let chosen: HashSet<&str> = nodes.iter().map(String::as_str).collect();
    let weights_only: HashSet<&str> = weight_only.iter().map(String::as_str).collect();
    let wo_opts = Int8Options {
        dynamic: true,
        format: Format::Qdq,
        ..opts.clone()
    };
    let old = out.graph.nodes().to_vec();
    let mut rw = Rewriter {
        opts,
        stats,
        nodes: Vec::with_capacity(old.len() * 2),
        quantized: HashMap::new(),
        dequantized: HashMap::new(),
    };
    for n in old {
        if weights_only.contains(n.name()) {
            let saved = rw.opts;
            rw.opts = &wo_opts;
            let r = rw.qdq(&mut out.graph, n);
            rw.opts = saved;
            r?;
            continue;
        }
        if !chosen.contains(n.name()) {
            rw.nodes.push(n);
            continue;
        }
        match opts.format {
            Format::Qdq => rw.qdq(&mut out.graph, n)?,
            Format::QOperator => rw.qoperator(&mut out.graph, n)?,
        }
    }
    let nodes = std::mem::take(&mut rw.nodes);
    let p = out.graph.proto_mut();
    p.node = nodes;
    p.value_info.clear();
    let read: HashSet<String> = p
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(p.output.iter().map(|o| o.name().to_string()))
        .collect();
    let dropped: HashSet<String> = p
        .initializer
        .iter()
        .filter(|t| !read.contains(t.name()))
        .map(|t| t.name().to_string())
        .collect();
    p.initializer.retain(|t| !dropped.contains(t.name()));
    // Inputs listed for initializers that are gone (IR < 4 style) go too.
    p.input.retain(|i| !dropped.contains(i.name()));
    if opts.fp16_constants {
        fp16_constants(&mut out)?;
    }
    out.graph.check()?;
    ensure_opset(&mut out, 13);
    Ok(out)
}

/// Float32 initializers of at least this many elements are stored as float16 by
/// [`Int8Options::fp16_constants`].
const FP16_CONSTANT_MIN: usize = 256;

/// Stores the remaining large float32 initializers as float16 with a `Cast` back to float32
/// (the computation stays float32; runtimes fold the cast at load). Values beyond float16's
/// range stay float32. Returns how many were converted.
fn fp16_constants(model: &mut Model) -> Result<usize, CompressError> {
    let g = &mut model.graph;
    let names: Vec<String> = g
        .initializers()
        .iter()
        .filter(|t| t.data_type() == vmunet_onnx_ir::DataType::Float as i32)
        .filter(|t| t.dims.iter().product::<i64>() as usize >= FP16_CONSTANT_MIN)
        .map(|t| t.name().to_string())
        .collect();
    let mut count = 0;
    let mut casts = Vec::new();
    for name in names {
        let (dims, data) = g.initializer::<f32>(&name)?;
        if data.iter().any(|v| v.abs() > 65504.0) {
            continue;
        }
        let h: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        let stored = g.fresh(&format!("{name}/fp16"));
        g.add_initializer(&stored, &dims, &h)?;
        let cast = g.fresh(&format!("{name}/Cast"));
        casts.push(node(
            cast,
            "Cast",
            vec![stored],
            vec![name.clone()],
            vec![("to", Attr::Int(vmunet_onnx_ir::DataType::Float as i64))],
        ));
        count += 1;
    }
    let p = g.proto_mut();
    let converted: HashSet<String> = casts.iter().map(|c| c.output[0].clone()).collect();
    p.initializer.retain(|t| !converted.contains(t.name()));
    p.input.retain(|i| !converted.contains(i.name()));
    let rest = std::mem::take(&mut p.node);
    p.node = casts;
    p.node.extend(rest);
    Ok(count)
}

fn ensure_opset(model: &mut Model, min: i64) {
    for o in &mut model.header.opset_import {
        if o.domain().is_empty() && o.version() < min {
            o.version = Some(min);
        }
    }
}

/// Quantises the float32 `model`: plans the nodes, calibrates their activations on `calib`
/// (not needed in dynamic mode) and rewrites the graph; records the step in the metadata.
pub fn quantize(
    model: &Model,
    opts: &Int8Options,
    calib: Option<&CalibrationSet>,
) -> Result<(Model, Int8Report), CompressError> {
    crate::check_float32(model)?;
    let Plan {
        quantize: take,
        keep,
    } = plan(&model.graph, opts)?;
    let weight_only: Vec<String> = keep
        .iter()
        .filter(|(_, w)| w == WEIGHT_ONLY)
        .map(|(n, _)| n.clone())
        .collect();
    if take.is_empty() {
        return Err(CompressError::Unsupported(
            "no Conv or MatMul node is left to quantise (all are excluded)".into(),
        ));
    }
    let (stats, calibration) = if opts.dynamic {
        (None, String::new())
    } else {
        let set = calib.ok_or_else(|| {
            CompressError::Options(
                "static quantisation needs calibration images (--calib DIR), or --dynamic".into(),
            )
        })?;
        let values = calibrated_values(&model.graph, &take);
        let stats = Stats::collect(model, &values, set, opts.method.needs_histograms())?;
        (
            Some(stats),
            format!("{} ({} images)", set.source, set.len()),
        )
    };
    let mut out = apply(model, &take, &weight_only, stats.as_ref(), opts)?;
    let fp16_constants = out
        .graph
        .nodes()
        .iter()
        .filter(|n| {
            n.op_type() == "Cast"
                && out
                    .graph
                    .initializer_proto(&n.input[0])
                    .is_some_and(|t| t.data_type() == vmunet_onnx_ir::DataType::Float16 as i32)
        })
        .count();
    let mut params = serde_json::Map::new();
    params.insert("source_sha256".into(), json!(crate::model_sha256(model)));
    params.insert("format".into(), json!(opts.format.name()));
    params.insert(
        "mode".into(),
        json!(if opts.dynamic { "dynamic" } else { "static" }),
    );
    if !opts.dynamic {
        params.insert("method".into(), json!(opts.method.to_string()));
        params.insert("calibration".into(), json!(calibration));
        params.insert(
            "activations".into(),
            json!(format!(
                "{} per tensor, {}",
                opts.activation_type.name(),
                if opts.symmetric_activations {
                    "symmetric"
                } else {
                    "asymmetric"
                }
            )),
        );
    }
    params.insert(
        "weights".into(),
        json!(if opts.reduce_range {
            "s8 per channel, symmetric, 7-bit (reduce_range)"
        } else {
            "s8 per channel, symmetric"
        }),
    );
    params.insert("exclude".into(), json!(opts.exclude));
    params.insert("quantized_nodes".into(), json!(take.len()));
    params.insert("weight_only_nodes".into(), json!(weight_only.len()));
    params.insert("fp16_constants".into(), json!(fp16_constants));
    params.insert(
        "kept_float".into(),
        json!(keep
            .iter()
            .map(|(n, w)| json!({"node": n, "reason": w}))
            .collect::<Vec<_>>()),
    );
    crate::record_step(&mut out, Precision::Int8, "int8", params)?;
    Ok((
        out,
        Int8Report {
            quantized: take,
            weight_only,
            fp16_constants,
            excluded: keep,
            calibration,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_per_channel_and_symmetric() {
        // Conv-like [2, 3]: channel 0 max 1.0, channel 1 max 4.0.
        let (q, s) = quantize_weights(&[2, 3], &[0.5, -1.0, 0.25, 4.0, 2.0, -4.0], 0, 127);
        assert_eq!(s, vec![1.0 / 127.0, 4.0 / 127.0]);
        assert_eq!(q, vec![64, -127, 32, 127, 64, -127]);
        // MatMul [K=2, N=2]: columns.
        let (q, s) = quantize_weights(&[2, 2], &[1.0, 0.5, -2.0, 0.25], 1, 127);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, 127, -127, 64]);
    }

    #[test]
    fn activation_parameters_cover_the_range() {
        let p = activation_params(-1.0, 3.0, ActivationType::S8, false);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        // -1.0 maps to -128, 3.0 to 127.
        assert_eq!(p.zero_point, -128 + 64);
        let p = activation_params(-1.0, 3.0, ActivationType::S8, true);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 3.0 / 127.0).abs() < 1e-7);
        let p = activation_params(0.0, 2.55, ActivationType::U8, false);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 0.01).abs() < 1e-7);
    }
}
