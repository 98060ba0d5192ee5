//! `SelectiveScan` through ONNX Runtime's custom-operator API (CPU execution provider).

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
};
use ort::value::TensorElementType;
use vmunet_onnx_ir::{CUSTOM_DOMAIN as ONNX_DOMAIN, CUSTOM_OP as ONNX_OP};
use vmunet_scan::cross_scan_op;

/// The operator (stateless).
pub struct SelectiveScan;

/// Its kernel.
pub struct SelectiveScanKernel;

/// The `ai.vmunet` domain with the scan registered.
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(ONNX_DOMAIN)?.add(SelectiveScan)
}

impl Operator for SelectiveScan {
    type Kernel<'attr> = SelectiveScanKernel;

    fn name(&self) -> &str {
        ONNX_OP
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        (0..6).map(|_| OperatorInput::required(TensorElementType::Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<Self::Kernel<'attr>> {
        Ok(SelectiveScanKernel)
    }
}

impl Kernel for SelectiveScanKernel {
    /// Runs the scan; a panic is caught here and reported to ONNX Runtime as an error, since
    /// ONNX Runtime calls this from C and an unwind must not cross that boundary.
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute(ctx))).unwrap_or_else(
            |payload| {
                Err(ort::Error::new(format!(
                    "{ONNX_OP} panicked: {}",
                    crate::guard::panic_message(payload.as_ref())
                )))
            },
        )
    }
}

/// The kernel's body: checks the six inputs, runs the cross scan, writes the output.
fn compute(ctx: &ComputeContext) -> ort::Result<()> {
    let mut values = Vec::with_capacity(6);
    for i in 0..6 {
        values.push(
            ctx.input(i)?
                .ok_or_else(|| ort::Error::new(format!("{ONNX_OP}: input {i} is missing")))?,
        );
    }
    let mut shapes = Vec::with_capacity(6);
    let mut data = Vec::with_capacity(6);
    for v in &values {
        let (shape, d) = v.try_extract_tensor::<f32>()?;
        shapes.push(shape.iter().map(|&x| x as usize).collect::<Vec<usize>>());
        data.push(d);
    }
    let args: [(&[usize], &[f32]); 6] = std::array::from_fn(|i| (shapes[i].as_slice(), data[i]));
    let (shape, y) = cross_scan_op(args).map_err(|e| ort::Error::new(e.to_string()))?;
    let mut out = ctx
        .output(0, shape)?
        .ok_or_else(|| ort::Error::new(format!("{ONNX_OP}: no output buffer")))?;
    let (_, dst) = out.try_extract_tensor_mut::<f32>()?;
    dst.copy_from_slice(&y);
    Ok(())
}
