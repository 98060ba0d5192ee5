//! The QOperator rewriter: `QLinearConv` / `QLinearMatMul` on quantised activations, with
//! `DequantizeLinear` back to float for the ops around them (tract's integer kernels); in
//! dynamic mode `DynamicQuantizeLinear` + `MatMulInteger`, rescaled to float.

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Attr, Graph};

use super::rewrite::{node, QValue, Rewriter};
use crate::CompressError;

impl Rewriter<'_> {
    /// Rewrites `n` in QOperator form (`MatMulInteger` in dynamic mode).
    pub(super) fn qoperator(&mut self, g: &mut Graph, n: NodeProto) -> Result<(), CompressError> {
        let (wq, ws, wz, w_scales, _) = self.weights(g, &n)?;
        if self.opts.dynamic {
            self.dynamic_matmul(g, &n, wq, ws, wz);
            return Ok(());
        }
        let x = n.input[0].clone();
        let y = n.output[0].clone();
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

    /// Dynamic mode: `DynamicQuantizeLinear` (uint8) -> `MatMulInteger` with the int8
    /// weights `wq` (scales `ws`, zero points `wz`) -> float * x_scale * w_scale.
    fn dynamic_matmul(&mut self, g: &mut Graph, n: &NodeProto, wq: String, ws: String, wz: String) {
        let x = n.input[0].clone();
        let y = n.output[0].clone();
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
    }
}
