//! The kernel: reads the six float tensors from ONNX Runtime's kernel context, runs
//! [`vmunet_scan::cross_scan_op`] (which checks every shape) and writes the output tensor.

use ort_sys::{
    ONNXTensorElementDataType, OrtApi, OrtErrorCode, OrtKernelContext, OrtStatus,
    OrtTensorTypeAndShapeInfo, OrtValue,
};
use vmunet_onnx_ir::{CUSTOM_OP, CUSTOM_OP_INPUTS};

use crate::{api, check, status};

/// Runs the operator; null on success, else an `OrtStatus` naming the problem. Never unwinds.
pub(crate) fn compute(context: *mut OrtKernelContext) -> *mut OrtStatus {
    let api = api();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(api, context)));
    match result {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(msg)) => status(
            api,
            OrtErrorCode::ORT_INVALID_ARGUMENT,
            &format!("{CUSTOM_OP}: {msg}"),
        ),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            status(
                api,
                OrtErrorCode::ORT_RUNTIME_EXCEPTION,
                &format!("{CUSTOM_OP} panicked: {what}"),
            )
        }
    }
}

/// One input: its shape and its float32 data (borrowed from ONNX Runtime for the call).
struct Input<'a> {
    shape: Vec<usize>,
    data: &'a [f32],
}

/// Shape and element count of a tensor value, checking that it is float32.
fn shape_of(api: &OrtApi, value: *const OrtValue, what: &str) -> Result<(Vec<i64>, usize), String> {
    let mut info: *mut OrtTensorTypeAndShapeInfo = std::ptr::null_mut();
    // SAFETY: `value` is a live tensor of the kernel context; `info` is released below.
    unsafe {
        check(api, (api.GetTensorTypeAndShape)(value, &mut info), what)?;
        let result = (|| {
            let mut ty = ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
            check(api, (api.GetTensorElementType)(info, &mut ty), what)?;
            if ty != ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT {
                return Err(format!(
                    "{what} is not float32 (ONNX element type {})",
                    ty as i32
                ));
            }
            let mut rank = 0usize;
            check(api, (api.GetDimensionsCount)(info, &mut rank), what)?;
            let mut dims = vec![0i64; rank];
            check(
                api,
                (api.GetDimensions)(info, dims.as_mut_ptr(), rank),
                what,
            )?;
            let mut count = 0usize;
            check(
                api,
                (api.GetTensorShapeElementCount)(info, &mut count),
                what,
            )?;
            Ok((dims, count))
        })();
        (api.ReleaseTensorTypeAndShapeInfo)(info);
        result
    }
}

/// The body of [`compute`].
fn run(api: &OrtApi, context: *mut OrtKernelContext) -> Result<(), String> {
    let mut count = 0usize;
    // SAFETY: `context` is the live kernel context ONNX Runtime passed to the kernel.
    unsafe {
        check(
            api,
            (api.KernelContext_GetInputCount)(context, &mut count),
            "input count",
        )?;
    }
    if count != CUSTOM_OP_INPUTS {
        return Err(format!("takes {CUSTOM_OP_INPUTS} inputs, got {count}"));
    }
    let mut inputs = Vec::with_capacity(CUSTOM_OP_INPUTS);
    for i in 0..CUSTOM_OP_INPUTS {
        let what = format!("input {i}");
        let mut value: *const OrtValue = std::ptr::null();
        // SAFETY: as above; index < count.
        unsafe {
            check(
                api,
                (api.KernelContext_GetInput)(context, i, &mut value),
                &what,
            )?
        };
        if value.is_null() {
            return Err(format!("{what} is missing"));
        }
        let (dims, n) = shape_of(api, value, &what)?;
        let shape = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("{what} has dimension {d}")))
            .collect::<Result<Vec<_>, _>>()?;
        let data: &[f32] = if n == 0 {
            &[]
        } else {
            let mut ptr: *mut std::ffi::c_void = std::ptr::null_mut();
            // SAFETY: a float32 tensor of `n` elements in host memory (CPU provider), alive and
            // unchanged for the duration of the call.
            unsafe {
                check(
                    api,
                    (api.GetTensorMutableData)(value as *mut OrtValue, &mut ptr),
                    &what,
                )?;
                std::slice::from_raw_parts(ptr as *const f32, n)
            }
        };
        inputs.push(Input { shape, data });
    }
    let args: [(&[usize], &[f32]); CUSTOM_OP_INPUTS] =
        std::array::from_fn(|i| (inputs[i].shape.as_slice(), inputs[i].data));
    let (shape, y) = vmunet_scan::cross_scan_op(args).map_err(|e| e.to_string())?;
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut out: *mut OrtValue = std::ptr::null_mut();
    // SAFETY: as above; ONNX Runtime allocates the output of `dims` float32 values.
    unsafe {
        check(
            api,
            (api.KernelContext_GetOutput)(context, 0, dims.as_ptr(), dims.len(), &mut out),
            "output",
        )?;
        if out.is_null() {
            return Err("ONNX Runtime gave no output buffer".into());
        }
        if !y.is_empty() {
            let mut ptr: *mut std::ffi::c_void = std::ptr::null_mut();
            check(api, (api.GetTensorMutableData)(out, &mut ptr), "output")?;
            std::ptr::copy_nonoverlapping(y.as_ptr(), ptr as *mut f32, y.len());
        }
    }
    Ok(())
}
