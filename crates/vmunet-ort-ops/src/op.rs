//! The operator's description for ONNX Runtime (`OrtCustomOp`: name, six float inputs, one
//! float output, CPU provider) and its registration in the `ai.vmunet` domain.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use ort_sys::{
    ONNXTensorElementDataType, OrtApi, OrtCustomOp, OrtCustomOpDomain,
    OrtCustomOpInputOutputCharacteristic, OrtKernelContext, OrtKernelInfo, OrtMemType,
    OrtSessionOptions, OrtStatusPtr,
};
use vmunet_onnx_ir::{CUSTOM_DOMAIN, CUSTOM_OP, CUSTOM_OP_INPUTS};

use crate::{check, kernel, API_VERSION};

/// The operator's name as a C string (`CUSTOM_OP` plus NUL).
fn op_name() -> &'static CStr {
    static NAME: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
    NAME.get_or_init(|| CString::new(CUSTOM_OP).expect("operator name has no NUL"))
}

/// The description ONNX Runtime reads (fields of C API versions up to [`API_VERSION`]).
static OP: OrtCustomOp = OrtCustomOp {
    version: API_VERSION,
    CreateKernel: None,
    GetName: Some(get_name),
    GetExecutionProviderType: Some(get_provider),
    GetInputType: Some(get_float),
    GetInputTypeCount: Some(input_count),
    GetOutputType: Some(get_float),
    GetOutputTypeCount: Some(output_count),
    KernelCompute: None,
    KernelDestroy: Some(kernel_destroy),
    GetInputCharacteristic: Some(required),
    GetOutputCharacteristic: Some(required),
    GetInputMemoryType: Some(memory_default),
    GetVariadicInputMinArity: Some(one),
    GetVariadicInputHomogeneity: Some(one),
    GetVariadicOutputMinArity: Some(one),
    GetVariadicOutputHomogeneity: Some(one),
    CreateKernelV2: Some(create_kernel),
    KernelComputeV2: Some(kernel_compute),
    InferOutputShapeFn: None,
    GetStartVersion: Some(start_version),
    GetEndVersion: Some(end_version),
    GetMayInplace: None,
    ReleaseMayInplace: None,
    GetAliasMap: None,
    ReleaseAliasMap: None,
};

/// Adds a new `ai.vmunet` domain holding `SelectiveScan` to `options`. The domain is never
/// released: sessions created from `options` refer to it for as long as they live.
pub(crate) fn register(api: &OrtApi, options: *mut OrtSessionOptions) -> Result<(), String> {
    let domain_name = CString::new(CUSTOM_DOMAIN).map_err(|e| e.to_string())?;
    let mut domain: *mut OrtCustomOpDomain = std::ptr::null_mut();
    // SAFETY: valid C string and out-pointer; OP is 'static.
    unsafe {
        check(
            api,
            (api.CreateCustomOpDomain)(domain_name.as_ptr(), &mut domain),
            "CreateCustomOpDomain",
        )?;
        check(
            api,
            (api.CustomOpDomain_Add)(domain, &OP),
            "CustomOpDomain_Add",
        )?;
        check(
            api,
            (api.AddCustomOpDomain)(options, domain),
            "AddCustomOpDomain",
        )
    }
}

unsafe extern "system" fn get_name(_: *const OrtCustomOp) -> *const c_char {
    op_name().as_ptr()
}

/// Null: the CPU execution provider.
unsafe extern "system" fn get_provider(_: *const OrtCustomOp) -> *const c_char {
    std::ptr::null()
}

unsafe extern "system" fn get_float(_: *const OrtCustomOp, _: usize) -> ONNXTensorElementDataType {
    ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
}

unsafe extern "system" fn input_count(_: *const OrtCustomOp) -> usize {
    CUSTOM_OP_INPUTS
}

unsafe extern "system" fn output_count(_: *const OrtCustomOp) -> usize {
    1
}

unsafe extern "system" fn required(
    _: *const OrtCustomOp,
    _: usize,
) -> OrtCustomOpInputOutputCharacteristic {
    OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED
}

unsafe extern "system" fn memory_default(_: *const OrtCustomOp, _: usize) -> OrtMemType {
    OrtMemType::OrtMemTypeDefault
}

unsafe extern "system" fn one(_: *const OrtCustomOp) -> c_int {
    1
}

unsafe extern "system" fn start_version(_: *const OrtCustomOp) -> c_int {
    1
}

unsafe extern "system" fn end_version(_: *const OrtCustomOp) -> c_int {
    c_int::MAX
}

/// The kernel holds no state: a non-null token is all ONNX Runtime needs.
unsafe extern "system" fn create_kernel(
    _: *const OrtCustomOp,
    _: *const OrtApi,
    _: *const OrtKernelInfo,
    kernel: *mut *mut c_void,
) -> OrtStatusPtr {
    if !kernel.is_null() {
        // SAFETY: ONNX Runtime passes a valid out-pointer.
        unsafe { *kernel = std::ptr::NonNull::<u8>::dangling().as_ptr().cast() };
    }
    OrtStatusPtr(std::ptr::null_mut())
}

unsafe extern "system" fn kernel_destroy(_: *mut c_void) {}

unsafe extern "system" fn kernel_compute(
    _: *mut c_void,
    context: *mut OrtKernelContext,
) -> OrtStatusPtr {
    OrtStatusPtr(kernel::compute(context))
}
