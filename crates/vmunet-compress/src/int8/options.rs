//! The options of int8 quantisation: graph form, activation type and the switches of
//! [`super::quantize`], with their command-line names.

use std::collections::BTreeSet;

use crate::calib::Method;

/// Graph form and activation type: the device target's types (`vmunet_target` decides which a
/// runtime needs).
pub use vmunet_target::{ActivationType, Int8Format as Format};

/// Options of [`super::quantize`].
#[derive(Debug, Clone)]
pub struct Int8Options {
    /// Graph form.
    pub format: Format,
    /// Calibration method for activation ranges.
    pub method: Method,
    /// Node names or patterns to keep float.
    pub exclude: Vec<String>,
    /// Dynamic mode: no calibration (QDQ: int8 weights only; QOperator: activations
    /// quantised at run time by `DynamicQuantizeLinear`).
    pub dynamic: bool,
    /// Activation element type.
    pub activation_type: ActivationType,
    /// Zero point 0 for activations (TensorRT).
    pub symmetric_activations: bool,
    /// 7-bit weights (avoids U8S8 saturation on x86 without VNNI).
    pub reduce_range: bool,
    /// Also quantise the activations of `x_proj` and `dt_proj` (the scan's parameters);
    /// by default only their weights are stored in int8 and they compute in float.
    pub quantize_scan_projections: bool,
    /// Store the float constants that stay float (the scan's `A`, `D`, biases, norms) as
    /// float16, widened by a `Cast` that runtimes fold at load (the default).
    pub fp16_constants: bool,
    /// Also quantise the layer producing the model's output.
    pub quantize_output_layer: bool,
    /// Quantise only these nodes (the sensitivity analysis; `None`: every candidate).
    pub only: Option<BTreeSet<String>>,
}

impl Default for Int8Options {
    fn default() -> Self {
        Self {
            format: Format::Qdq,
            method: Method::MinMax,
            exclude: Vec::new(),
            dynamic: false,
            activation_type: ActivationType::S8,
            symmetric_activations: false,
            reduce_range: false,
            quantize_scan_projections: false,
            fp16_constants: true,
            quantize_output_layer: false,
            only: None,
        }
    }
}
