//! The state the two rewriters share: the new node list, the activations already quantised,
//! and the steps both forms take (activation scale and zero point, `QuantizeLinear`, int8
//! weights, int32 biases).

use std::collections::HashMap;

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Attr, Graph};

use super::options::{ActivationType, Int8Options};
use super::params::{activation_params, quantize_bias, quantize_weights, QParams};
use crate::calib::Stats;
use crate::CompressError;

/// A node named `name` running `op` on `inputs`, with `attrs`.
pub(super) fn node(
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
pub(super) struct QValue {
    /// The integer value.
    pub(super) q: String,
    /// Its scale.
    pub(super) scale: String,
    /// Its zero point.
    pub(super) zp: String,
}

/// The rewrite in progress: the options, the calibrated ranges and the nodes emitted so far.
pub(super) struct Rewriter<'a> {
    /// The options (swapped for the weight-only nodes).
    pub(super) opts: &'a Int8Options,
    /// The calibrated ranges (`None` in dynamic mode).
    pub(super) stats: Option<&'a Stats>,
    /// The rewritten nodes, in order.
    pub(super) nodes: Vec<NodeProto>,
    /// Float value -> its quantised form (made once).
    pub(super) quantized: HashMap<String, QValue>,
    /// Float value -> its dequantised copy (QDQ).
    pub(super) dequantized: HashMap<String, String>,
}

impl Rewriter<'_> {
    /// The activation parameters of `value` from its calibrated range.
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
    pub(super) fn scale_and_zero_point(
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
    pub(super) fn quantize_value(
        &mut self,
        g: &mut Graph,
        value: &str,
    ) -> Result<QValue, CompressError> {
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

    /// int8 weights of node `n` (input 1): initializer names of the values, per-channel scales
    /// and zero points, and the scales themselves.
    pub(super) fn weights(
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
    pub(super) fn bias(
        &mut self,
        g: &mut Graph,
        bias: &str,
        x_scale: f32,
        w_scales: &[f32],
    ) -> Result<(String, String), CompressError> {
        let (dims, b) = g.initializer::<f32>(bias)?;
        let (q, scales) = quantize_bias(&b, x_scale, w_scales);
        let qn = g.fresh(&format!("{bias}/int32"));
        g.add_initializer(&qn, &dims, &q)?;
        let sn = g.fresh(&format!("{bias}/scale"));
        g.add_initializer(&sn, &[scales.len()], &scales)?;
        Ok((qn, sn))
    }

    /// The value of the scalar float initializer `name` (a scale).
    pub(super) fn scale_of(&self, g: &Graph, name: &str) -> Result<f32, CompressError> {
        Ok(g.initializer::<f32>(name)?.1[0])
    }
}
