//! The int8 settings a user asks for, before a device target completes them
//! ([`crate::int8_for_target`]); usable as command-line arguments with the `clap` feature.

use vmunet_target::{ActivationType, Int8Format};

use crate::{Int8Options, Method};

/// int8 settings as asked for (`None`: the target's, else the default).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Int8Request {
    /// Graph form: qdq (ONNX Runtime, TensorRT) or qoperator (tract's integer kernels).
    /// Default: what --profile's runtime needs, else qdq.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<Int8Format>,
    /// Activation range: minmax, percentile (99.99), percentile:P or entropy.
    #[cfg_attr(feature = "clap", arg(long, default_value = "minmax"))]
    pub method: Method,
    /// Activation type: s8 (S8S8) or u8 (U8S8). Default s8; an ONNX Runtime CPU profile on an
    /// x86 CPU without VNNI picks u8 with --reduce-range (measured fastest there, same DSC).
    #[cfg_attr(feature = "clap", arg(long))]
    pub activations: Option<ActivationType>,
    /// Zero point 0 for activations (TensorRT needs it; set by a TensorRT profile).
    #[cfg_attr(feature = "clap", arg(long))]
    pub symmetric: bool,
    /// 7-bit weights (U8S8 on x86 without VNNI).
    #[cfg_attr(feature = "clap", arg(long))]
    pub reduce_range: bool,
    /// Also quantise x_proj and dt_proj, which compute the scan's parameters.
    #[cfg_attr(feature = "clap", arg(long))]
    pub quantize_scan_proj: bool,
    /// Also quantise the layer that produces the model's output.
    #[cfg_attr(feature = "clap", arg(long))]
    pub quantize_output_layer: bool,
    /// Keep the float constants that stay float (the scan's A and D, norms, biases) in
    /// float32 storage instead of float16 (widened at load either way).
    #[cfg_attr(feature = "clap", arg(long))]
    pub fp32_constants: bool,
}

impl Default for Int8Request {
    fn default() -> Self {
        Self {
            format: None,
            method: Method::MinMax,
            activations: None,
            symmetric: false,
            reduce_range: false,
            quantize_scan_proj: false,
            quantize_output_layer: false,
            fp32_constants: false,
        }
    }
}

impl Int8Request {
    /// The options this request gives, with `exclude` patterns and `dynamic` mode, before a
    /// target completes them: qdq and s8 where nothing is asked.
    pub fn options(&self, exclude: Vec<String>, dynamic: bool) -> Int8Options {
        Int8Options {
            format: self.format.unwrap_or(Int8Format::Qdq),
            method: self.method,
            exclude,
            dynamic,
            activation_type: self.activations.unwrap_or(ActivationType::S8),
            symmetric_activations: self.symmetric,
            reduce_range: self.reduce_range,
            quantize_scan_projections: self.quantize_scan_proj,
            quantize_output_layer: self.quantize_output_layer,
            fp16_constants: !self.fp32_constants,
            only: None,
        }
    }
}
