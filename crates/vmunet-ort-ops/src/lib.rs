//! `libvmunet_ort_ops.so`: VM-UNet's four-direction selective scan (`ai.vmunet::SelectiveScan`,
//! the custom operator of `vmunet export --scan custom`) as an ONNX Runtime custom-op library.
//!
//! Stock ONNX Runtime loads it and calls its C entry point [`RegisterCustomOps`]:
//!
//! - Python: `so = onnxruntime.SessionOptions(); so.register_custom_ops_library(path)`;
//! - C/C++: `OrtApi::RegisterCustomOpsLibrary_V2(options, path)` (or
//!   `Ort::SessionOptions::RegisterCustomOpsLibrary`);
//! - Triton's ONNX Runtime back-end: `model_operations { op_library_filename: "path" }`.
//!
//! The operator runs on the CPU execution provider (with the CUDA provider ONNX Runtime copies
//! its inputs to the host) with the same kernel as the `vmunet` runtimes
//! ([`vmunet_scan::cross_scan_op`]: AVX2 on x86-64, NEON on aarch64, threads over channel
//! blocks). It asks ONNX Runtime for C API version [`API_VERSION`], so ONNX Runtime 1.17 and
//! newer load it (JetPack 6.0 ships 1.18, JetPack 6.1/6.2 ship 1.23).
//!
//! Nothing here links ONNX Runtime: it hands the library its API table. No panic crosses the C
//! boundary: every entry point catches unwinds and turns them into an `OrtStatus`.

#![deny(missing_docs)]

mod kernel;
mod op;

use std::ffi::CString;
use std::sync::OnceLock;

use ort_sys::{OrtApi, OrtApiBase, OrtErrorCode, OrtSessionOptions, OrtStatus, OrtStatusPtr};

/// The C API version the library asks for (ONNX Runtime 1.17): the oldest whose custom-op
/// struct has everything the operator uses (`CreateKernelV2`, `KernelComputeV2`, versions).
pub const API_VERSION: u32 = 17;

/// ONNX Runtime's API table, from the first [`RegisterCustomOps`] call.
static API: OnceLock<ApiRef> = OnceLock::new();

/// The API table pointer ONNX Runtime handed over: valid for the life of the process.
#[derive(Clone, Copy)]
struct ApiRef(&'static OrtApi);
// SAFETY: the table is immutable function pointers owned by ONNX Runtime for the process's life.
unsafe impl Send for ApiRef {}
// SAFETY: as above.
unsafe impl Sync for ApiRef {}

/// The API table (set by [`RegisterCustomOps`] before any kernel can run).
fn api() -> &'static OrtApi {
    API.get()
        .expect("RegisterCustomOps sets the API before ONNX Runtime runs a kernel")
        .0
}

/// A new `OrtStatus` with `code` and `msg`, owned by whoever receives it.
fn status(api: &OrtApi, code: OrtErrorCode, msg: &str) -> *mut OrtStatus {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: CreateStatus copies the message.
    unsafe { (api.CreateStatus)(code, msg.as_ptr()).0 }
}

/// Turns an `OrtStatus` from an API call into an error message (releasing it), or `Ok`.
fn check(api: &OrtApi, s: OrtStatusPtr, what: &str) -> Result<(), String> {
    if s.0.is_null() {
        return Ok(());
    }
    // SAFETY: `s` is a live status returned by ONNX Runtime; it is released once, here.
    let msg = unsafe {
        let text = std::ffi::CStr::from_ptr((api.GetErrorMessage)(s.0))
            .to_string_lossy()
            .into_owned();
        (api.ReleaseStatus)(s.0);
        text
    };
    Err(format!("{what}: {msg}"))
}

/// The entry point ONNX Runtime calls after loading the library: adds the `ai.vmunet` domain
/// with `SelectiveScan` to `options`. Returns null on success, else an `OrtStatus` (owned by
/// the caller) saying what failed.
///
/// # Safety
///
/// `options` and `api_base` must be the live pointers ONNX Runtime passes to a custom-op
/// library.
#[no_mangle]
pub unsafe extern "C" fn RegisterCustomOps(
    options: *mut OrtSessionOptions,
    api_base: *const OrtApiBase,
) -> *mut OrtStatus {
    if api_base.is_null() || options.is_null() {
        return std::ptr::null_mut(); // nothing to report through: no API table
    }
    // SAFETY: ONNX Runtime's API base; GetApi returns null for a version it lacks.
    let table = unsafe { ((*api_base).GetApi)(API_VERSION) };
    if table.is_null() {
        // An older ONNX Runtime: its version-1 table (every release has one) reports the error.
        // SAFETY: as above; GetVersionString returns a static C string.
        let (v1, version) = unsafe {
            (
                ((*api_base).GetApi)(1),
                std::ffi::CStr::from_ptr(((*api_base).GetVersionString)()),
            )
        };
        let msg = format!(
            "libvmunet_ort_ops needs ONNX Runtime 1.17 or newer (C API {API_VERSION}); this is {}",
            version.to_string_lossy()
        );
        if v1.is_null() {
            eprintln!("{msg}");
            return std::ptr::null_mut();
        }
        // SAFETY: CreateStatus is in the version-1 table.
        return status(unsafe { &*v1 }, OrtErrorCode::ORT_FAIL, &msg);
    }
    // SAFETY: a non-null table from GetApi lives as long as the process.
    let api = API.get_or_init(|| ApiRef(unsafe { &*table })).0;
    match std::panic::catch_unwind(|| op::register(api, options)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(msg)) => status(api, OrtErrorCode::ORT_FAIL, &msg),
        Err(_) => status(
            api,
            OrtErrorCode::ORT_FAIL,
            "libvmunet_ort_ops: RegisterCustomOps panicked",
        ),
    }
}
