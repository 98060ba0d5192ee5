//! The cross scan as a differentiable burn operation.
//!
//! [`ScanBackend`] for `Autodiff<B>` runs the inner backend's forward and registers a backward
//! step that calls the inner backend's [`ScanBackend::selective_scan_2d_backward`]: the host
//! implementation on ndarray, the CubeCL kernel on burn-wgpu / burn-cuda. The scan's inputs are
//! checkpointed (kept or recomputed by burn's checkpointing strategy); the states are not kept,
//! the backward recomputes them.
//!
//! [`DwConvBackend`] for `Autodiff<B>` does the same for the depthwise convolution, with the
//! inner backend's [`DwConvBackend::depthwise_conv2d_backward`].

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff, NodeId,
};
use burn::tensor::{backend::Backend, Tensor, TensorPrimitive};

use crate::burn_op::{DwConvBackend, ScanBackend};
use crate::dims::CrossScanDims;

#[derive(Debug)]
struct CrossScanBackward;

impl<B: ScanBackend> Backward<B, 6> for CrossScanBackward {
    type State = (CrossScanDims, [NodeId; 6]);

    fn backward(
        self,
        ops: Ops<Self::State, 6>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (dims, ids) = ops.state;
        let [u, delta, x_dbl, a, d, bias] =
            ids.map(|id| checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(id));
        let g = B::selective_scan_2d_backward(
            dims,
            float(u),
            float(delta),
            float(x_dbl),
            float(a),
            float(d),
            float(bias),
            float(dy),
        );
        let grads_in = [
            prim(g.u),
            prim(g.delta),
            prim(g.x_dbl),
            prim(g.a),
            prim(g.d),
            prim(g.delta_bias),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(grads_in) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct DwConvBackward;

impl<B: DwConvBackend> Backward<B, 3> for DwConvBackward {
    type State = (usize, [NodeId; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (padding, ids) = ops.state;
        let [x, weight] =
            ids.map(|id| checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(id));
        let g = B::depthwise_conv2d_backward(float(x), float(weight), padding, float(dy));
        let grads_in = [prim(g.x), prim(g.weight), prim(g.bias)];
        for (parent, grad) in ops.parents.into_iter().zip(grads_in) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: DwConvBackend, C: CheckpointStrategy> DwConvBackend for Autodiff<B, C> {
    fn depthwise_conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        padding: usize,
    ) -> Tensor<Self, 4> {
        let (x, weight, bias) = (prim(x), prim(weight), prim(bias));
        let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
        let forward = || {
            B::depthwise_conv2d(
                float(x.primitive.clone()),
                float(weight.primitive.clone()),
                float(bias.primitive.clone()),
                padding,
            )
        };
        let out = match DwConvBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let ids = [prep.checkpoint(&x), prep.checkpoint(&weight)];
                prep.finish((padding, ids), prim(forward()))
            }
            OpsKind::UnTracked(prep) => prep.finish(prim(forward())),
        };
        float(out)
    }
}

fn float<B: Backend, const D: usize>(p: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

impl<B: ScanBackend, C: CheckpointStrategy> ScanBackend for Autodiff<B, C> {
    fn selective_scan_2d(
        dims: CrossScanDims,
        u: Tensor<Self, 3>,
        delta: Tensor<Self, 4>,
        x_dbl: Tensor<Self, 4>,
        a: Tensor<Self, 2>,
        d: Tensor<Self, 1>,
        delta_bias: Tensor<Self, 1>,
    ) -> Tensor<Self, 3> {
        let (u, delta, x_dbl, a, d, bias) = (
            prim(u),
            prim(delta),
            prim(x_dbl),
            prim(a),
            prim(d),
            prim(delta_bias),
        );
        let nodes = [
            u.node.clone(),
            delta.node.clone(),
            x_dbl.node.clone(),
            a.node.clone(),
            d.node.clone(),
            bias.node.clone(),
        ];
        let forward = || {
            B::selective_scan_2d(
                dims,
                float(u.primitive.clone()),
                float(delta.primitive.clone()),
                float(x_dbl.primitive.clone()),
                float(a.primitive.clone()),
                float(d.primitive.clone()),
                float(bias.primitive.clone()),
            )
        };
        let out = match CrossScanBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let ids = [
                    prep.checkpoint(&u),
                    prep.checkpoint(&delta),
                    prep.checkpoint(&x_dbl),
                    prep.checkpoint(&a),
                    prep.checkpoint(&d),
                    prep.checkpoint(&bias),
                ];
                prep.finish((dims, ids), prim(forward()))
            }
            OpsKind::UnTracked(prep) => prep.finish(prim(forward())),
        };
        float(out)
    }
}
