//! The `ai.vmunet::SelectiveScan` custom operator for the runtimes: one kernel
//! ([`vmunet_scan::cross_scan_op`], vectorised and multi-threaded), registered in tract's op
//! registry and in ONNX Runtime's custom-operator API.

#[cfg(feature = "ort")]
pub(crate) mod ort_op;
pub(crate) mod tract_op;

/// True when the model file uses the custom scan operator.
pub fn uses_custom_scan(file: &crate::ModelFile) -> bool {
    file.metadata.scan == Some(vmunet_onnx_ir::ScanForm::Custom)
}
