//! `SelectiveScan` as a tract operator (inference rules, typed facts, evaluation).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use vmunet_onnx_ir::{CUSTOM_DOMAIN as ONNX_DOMAIN, CUSTOM_OP as ONNX_OP};
use vmunet_scan::cross_scan_op;

/// The cross selective scan; the output has `u`'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectiveScan;

/// Adds the operator to tract's ONNX op registry.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(ONNX_OP, build);
}

fn build(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(
        node.domain == ONNX_DOMAIN,
        "{ONNX_OP} in domain {:?}: only {ONNX_DOMAIN} is known",
        node.domain
    );
    Ok((Box::new(SelectiveScan), vec![]))
}

impl Op for SelectiveScan {
    fn name(&self) -> StaticName {
        ONNX_OP.into()
    }
    op_as_typed_op!();
}

impl EvalOp for SelectiveScan {
    not_out_of_plan!();
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == vmunet_onnx_ir::CUSTOM_OP_INPUTS,
            "{ONNX_OP} takes 6 inputs, got {}",
            inputs.len()
        );
        let mut views = Vec::with_capacity(6);
        for t in &inputs {
            views.push((t.shape(), t.try_as_plain_ram()?.as_slice::<f32>()?));
        }
        let args: [(&[usize], &[f32]); 6] = std::array::from_fn(|i| views[i]);
        let (shape, y) = cross_scan_op(args)?;
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(shape, y)?.into_tvalue()
        ))
    }
}

impl InferenceRulesOp for SelectiveScan {
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 6)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }
    as_op!();
    to_typed!();
}

impl TypedOp for SelectiveScan {
    as_op!();
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == vmunet_onnx_ir::CUSTOM_OP_INPUTS,
            "{ONNX_OP} takes 6 inputs, got {}",
            inputs.len()
        );
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    /// Multiply-adds: per position, channel, direction and state, about three for the update
    /// (`exp(delta A)`, `* h`, `+ delta B u`) and one for the read-out `C h`.
    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let states = inputs
            .get(3)
            .and_then(|a| a.shape.as_concrete().and_then(|s| s.get(1).copied()))
            .unwrap_or(16);
        let n: TDim = inputs[0].shape.iter().product();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            n * (vmunet_scan::DIRECTIONS * states * 4) as i64
        )))
    }
}
