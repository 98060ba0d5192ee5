//! The device target: a device profile (`devices/*.toml`) read once into typed fields, and every
//! decision derived from it, in one place.
//!
//! - [`DeviceProfile`]: runtime ([`RuntimeKind`]), execution providers with their options
//!   ([`Provider`]), precision (the ONNX metadata's [`Precision`]), scan form ([`ScanForm`]),
//!   threads, input size, batch, memory budget.
//! - [`ExportDefaults`]: what `export` uses when the command line does not say (size, scan form,
//!   chunk length, chunk memory).
//! - [`Int8Defaults`]: the int8 graph form a runtime needs (QOperator for tract, QDQ for ONNX
//!   Runtime), symmetric activations for TensorRT, U8S8 with 7-bit weights for ONNX Runtime's CPU
//!   provider on x86 without VNNI.
//! - [`DeviceProfile::check`]: one check of a model against the target, returning
//!   [`Finding`]s with a [`Severity`]; compress, bundle, Triton and serve all call it and decide
//!   only what to do with an error or a warning.

#![deny(missing_docs)]

mod check;
mod defaults;
mod profile;
mod provider;

pub use check::{Finding, FindingKind, Severity};
pub use defaults::{
    default_input_size, ActivationType, ExportDefaults, Host, Int8Defaults, Int8Format,
};
pub use profile::{CudaSection, DeviceProfile, ProfileError, ProviderName, TensorRtSection};
pub use provider::{ArenaExtend, ConvAlgoSearch, CudaOptions, Provider, TensorRtOptions};
pub use vmunet_onnx_ir::{Precision, ScanForm};

/// The runtimes vmunet knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// tract, CPU.
    Tract,
    /// ONNX Runtime (CPU unless a device profile selects CUDA / TensorRT).
    Ort,
    /// burn on the checkpoint itself (no ONNX file).
    Burn,
}

impl RuntimeKind {
    /// The name used on the command line and in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Ort => "ort",
            Self::Burn => "burn",
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tract" => Ok(Self::Tract),
            "ort" => Ok(Self::Ort),
            "burn" => Ok(Self::Burn),
            other => Err(format!(
                "unknown runtime `{other}` (available: tract, ort, burn)"
            )),
        }
    }
}
