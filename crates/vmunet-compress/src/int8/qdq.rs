//! The QDQ rewriter: `QuantizeLinear` / `DequantizeLinear` around the float `Conv` and
//! `MatMul` (weights as int8 with a per-channel `DequantizeLinear`, the Conv bias as int32),
//! which ONNX Runtime and TensorRT fuse into integer kernels. In dynamic mode only the
//! weights are int8.

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Attr, Graph};

use super::rewrite::{node, QValue, Rewriter};
use crate::CompressError;

impl Rewriter<'_> {
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

    /// Rewrites `n` in QDQ form (weights only in dynamic mode).
    pub(super) fn qdq(&mut self, g: &mut Graph, mut n: NodeProto) -> Result<(), CompressError> {
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
}
