//! What a target implies when the command line does not say: export settings and int8 settings.

use vmunet_onnx_ir::ScanForm;

use crate::{DeviceProfile, ProviderName, RuntimeKind};

/// The input size (H = W) when none is asked for: the size the model was trained at, else the
/// device profile's, else 256.
pub fn default_input_size(trained: Option<usize>, profile: Option<&DeviceProfile>) -> usize {
    trained.or(profile.map(|p| p.input_size)).unwrap_or(256)
}

/// Export settings a profile implies; `None` leaves the exporter's own default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportDefaults {
    /// Scan formulation.
    pub scan: Option<ScanForm>,
    /// Chunk length of the chunked form.
    pub chunk: Option<usize>,
    /// Largest float32 intermediate of the chunked scan, in MiB.
    pub chunk_memory_mb: Option<u64>,
    /// The profile's input size (the size a checkpoint was trained at still comes first:
    /// [`default_input_size`]).
    pub input_size: Option<usize>,
}

impl DeviceProfile {
    /// The export settings this profile implies.
    pub fn export_defaults(&self) -> ExportDefaults {
        ExportDefaults {
            scan: Some(self.scan),
            chunk: self.chunk,
            chunk_memory_mb: self.chunk_memory_mb,
            input_size: Some(self.input_size),
        }
    }

    /// The int8 settings this profile needs on `host`.
    pub fn int8_defaults(&self, host: Host) -> Int8Defaults {
        Int8Defaults::for_runtime(self.runtime, &self.providers, host)
    }
}

/// Graph form of an int8 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Int8Format {
    /// QuantizeLinear/DequantizeLinear pairs around float ops (ONNX Runtime CPU/CUDA, TensorRT
    /// fuse them into integer kernels).
    Qdq,
    /// QLinearConv / QLinearMatMul (tract's integer kernels).
    QOperator,
}

impl Int8Format {
    /// The command-line name (`qdq`, `qoperator`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Qdq => "qdq",
            Self::QOperator => "qoperator",
        }
    }
}

impl std::fmt::Display for Int8Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Int8Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qdq" => Ok(Self::Qdq),
            "qoperator" => Ok(Self::QOperator),
            o => Err(format!(
                "unknown int8 format `{o}` (expected qdq or qoperator)"
            )),
        }
    }
}

/// Element type of quantised activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationType {
    /// int8 (S8S8 with int8 weights).
    S8,
    /// uint8 (U8S8; may saturate on x86 without VNNI unless the weights use 7 bits).
    U8,
}

impl ActivationType {
    /// The command-line name (`s8`, `u8`).
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "s8" => Ok(Self::S8),
            "u8" => Ok(Self::U8),
            o => Err(format!(
                "unknown int8 activation type `{o}` (expected s8 or u8)"
            )),
        }
    }
}

/// The machine the int8 model will run on, as far as the int8 settings care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Host {
    /// An x86-64 CPU without VNNI: ONNX Runtime's U8S8 kernels may saturate there unless the
    /// weights use 7 bits.
    pub x86_without_vnni: bool,
}

impl Host {
    /// This machine.
    pub fn this_machine() -> Self {
        #[cfg(target_arch = "x86_64")]
        let x86_without_vnni = !(std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni"));
        #[cfg(not(target_arch = "x86_64"))]
        let x86_without_vnni = false;
        Self { x86_without_vnni }
    }
}

/// The int8 settings a runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int8Defaults {
    /// QOperator for tract, QDQ for ONNX Runtime (and TensorRT).
    pub format: Int8Format,
    /// Zero point 0 for activations: TensorRT's requirement.
    pub symmetric_activations: bool,
    /// U8 (with 7-bit weights) for ONNX Runtime's CPU provider on x86 without VNNI (measured
    /// fastest there, same DSC); S8 otherwise.
    pub activations: ActivationType,
    /// 7-bit weights (with U8 activations on x86 without VNNI).
    pub reduce_range: bool,
}

impl Int8Defaults {
    /// The settings for `runtime` with `providers` on `host`.
    pub fn for_runtime(runtime: RuntimeKind, providers: &[ProviderName], host: Host) -> Self {
        let format = match runtime {
            RuntimeKind::Tract => Int8Format::QOperator,
            _ => Int8Format::Qdq,
        };
        let ort_cpu_x86 = runtime == RuntimeKind::Ort
            && providers.iter().all(|p| *p == ProviderName::Cpu)
            && host.x86_without_vnni;
        Self {
            format,
            symmetric_activations: providers.contains(&ProviderName::Tensorrt),
            activations: if ort_cpu_x86 {
                ActivationType::U8
            } else {
                ActivationType::S8
            },
            reduce_range: ort_cpu_x86,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> DeviceProfile {
        DeviceProfile::load(&vmunet_testdata::repo_root().join("devices").join(name)).unwrap()
    }

    #[test]
    fn int8_settings_follow_the_runtime_and_the_cpu() {
        let no_vnni = Host {
            x86_without_vnni: true,
        };
        let vnni = Host::default();
        let tract = profile("cpu-tract.toml").int8_defaults(no_vnni);
        assert_eq!(tract.format, Int8Format::QOperator);
        assert_eq!(tract.activations, ActivationType::S8);
        let x86 = profile("x86-cpu.toml");
        let d = x86.int8_defaults(no_vnni);
        assert_eq!(
            (
                d.format,
                d.activations,
                d.reduce_range,
                d.symmetric_activations
            ),
            (Int8Format::Qdq, ActivationType::U8, true, false)
        );
        let d = x86.int8_defaults(vnni);
        assert_eq!((d.activations, d.reduce_range), (ActivationType::S8, false));
        let nano = profile("jetson-orin-nano.toml").int8_defaults(no_vnni);
        assert_eq!(
            (nano.format, nano.symmetric_activations, nano.activations),
            (Int8Format::Qdq, true, ActivationType::S8)
        );
        for f in [Int8Format::Qdq, Int8Format::QOperator] {
            assert_eq!(f.to_string(), f.name());
            assert_eq!(f.name().parse::<Int8Format>(), Ok(f));
        }
        for t in [ActivationType::S8, ActivationType::U8] {
            assert_eq!(t.to_string(), t.name());
            assert_eq!(t.name().parse::<ActivationType>(), Ok(t));
        }
        assert_eq!(
            "x".parse::<Int8Format>().unwrap_err(),
            "unknown int8 format `x` (expected qdq or qoperator)"
        );
        assert_eq!(
            "i8".parse::<ActivationType>().unwrap_err(),
            "unknown int8 activation type `i8` (expected s8 or u8)"
        );
    }

    #[test]
    fn export_settings_and_sizes() {
        let nano = profile("jetson-orin-nano.toml").export_defaults();
        assert_eq!(nano.scan, Some(ScanForm::Chunked));
        assert_eq!(nano.chunk, Some(64));
        let tract = profile("cpu-tract.toml");
        assert_eq!(tract.export_defaults().scan, Some(ScanForm::Custom));
        assert_eq!(default_input_size(Some(128), Some(&tract)), 128);
        assert_eq!(default_input_size(None, Some(&tract)), 256);
        assert_eq!(default_input_size(None, None), 256);
    }
}
