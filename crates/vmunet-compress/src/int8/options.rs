//! The options of int8 quantisation: graph form, activation type and the switches of
//! [`super::quantize`], with their command-line names.

use std::collections::BTreeSet;

use crate::calib::Method;
use crate::CompressError;

/// Graph form of the quantised model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// QuantizeLinear/DequantizeLinear pairs (ONNX Runtime CPU/CUDA, TensorRT).
    Qdq,
    /// QLinearConv / QLinearMatMul (tract's integer kernels).
    QOperator,
}

impl Format {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qdq => "qdq",
            Self::QOperator => "qoperator",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = CompressError;

    /// Parses the command-line name (`qdq`, `qoperator`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qdq" => Ok(Self::Qdq),
            "qoperator" => Ok(Self::QOperator),
            _ => Err(CompressError::Options(format!(
                "unknown int8 format `{s}` (expected qdq or qoperator)"
            ))),
        }
    }
}

/// Element type of quantised activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationType {
    /// int8 (S8S8 with int8 weights).
    S8,
    /// uint8 (U8S8; may saturate on x86 without VNNI unless `reduce_range`).
    U8,
}

impl ActivationType {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::S8 => "s8",
            Self::U8 => "u8",
        }
    }
}

impl std::fmt::Display for ActivationType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ActivationType {
    type Err = CompressError;

    /// Parses the command-line name (`s8`, `u8`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "s8" => Ok(Self::S8),
            "u8" => Ok(Self::U8),
            _ => Err(CompressError::Options(format!(
                "unknown int8 activation type `{s}` (expected s8 or u8)"
            ))),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for f in [Format::Qdq, Format::QOperator] {
            assert_eq!(f.to_string(), f.name());
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        for t in [ActivationType::S8, ActivationType::U8] {
            assert_eq!(t.to_string(), t.name());
            assert_eq!(t.name().parse::<ActivationType>().unwrap(), t);
        }
        let e = "x".parse::<Format>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown int8 format `x` (expected qdq or qoperator)"
        );
        let e = "i8".parse::<ActivationType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown int8 activation type `i8` (expected s8 or u8)"
        );
    }
}
