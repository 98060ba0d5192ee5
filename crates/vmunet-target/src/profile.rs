//! Device profiles (`devices/*.toml`): which runtime and execution providers a target uses,
//! at which precision, with how many threads, at which input size and batch.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use vmunet_onnx_ir::{Precision, ScanForm};

use crate::provider::{ArenaExtend, ConvAlgoSearch};
use crate::RuntimeKind;

/// Execution providers a profile may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// ONNX Runtime CPU.
    Cpu,
    /// ONNX Runtime CUDA.
    Cuda,
    /// ONNX Runtime TensorRT.
    Tensorrt,
}

impl ProviderName {
    /// The name profiles use (`cpu`, `cuda`, `tensorrt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Tensorrt => "tensorrt",
        }
    }

    /// The name reports print (`CPU`, `CUDA`, `TensorRT`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Cuda => "CUDA",
            Self::Tensorrt => "TensorRT",
        }
    }
}

/// TensorRT settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorRtSection {
    /// GPU index.
    #[serde(default)]
    pub device_id: i32,
    /// Builder workspace in MiB.
    pub workspace_mb: Option<usize>,
    /// Engine cache folder (`~` expands to $HOME).
    pub engine_cache: Option<String>,
    /// Timing cache folder (`~` expands to $HOME).
    pub timing_cache: Option<String>,
    /// Builder optimisation level, 0..=5 (TensorRT's default: 3; higher builds slower and
    /// may run faster).
    pub builder_optimization_level: Option<u8>,
    /// Deep-learning accelerator core to use (Jetson AGX Orin and Xavier have DLA cores 0 and
    /// 1; the Orin Nano has none). Layers the DLA cannot run fall back to the GPU.
    pub dla_core: Option<u32>,
}

/// CUDA provider settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CudaSection {
    /// GPU index (default: `tensorrt.device_id`, else 0).
    pub device_id: Option<i32>,
    /// Cap on the CUDA memory arena in MiB (on a Jetson the GPU shares the board's memory).
    pub gpu_mem_limit_mb: Option<usize>,
    /// Arena growth: `next_power_of_two` (ONNX Runtime's default) or `same_as_requested`
    /// (holds the least memory).
    pub arena_extend: Option<ArenaExtend>,
    /// cuDNN convolution algorithm search: `exhaustive`, `heuristic` or `default`.
    pub conv_algo_search: Option<ConvAlgoSearch>,
}

/// A target device profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Human-readable target name.
    pub name: String,
    /// `ort` or `tract`.
    #[serde(deserialize_with = "runtime_field")]
    pub runtime: RuntimeKind,
    /// Execution providers in order of preference (ort only).
    #[serde(default = "default_providers")]
    pub providers: Vec<ProviderName>,
    /// Precision the target computes at: `fp32`, or `fp16` / `int8` kernels where TensorRT
    /// allows them (the scan's state stays float32).
    #[serde(default = "default_precision", deserialize_with = "precision_field")]
    pub precision: Precision,
    /// CPU threads for the runtime (None: the runtime's default).
    pub threads: Option<usize>,
    /// Model input size (H = W).
    #[serde(default = "default_size")]
    pub input_size: usize,
    /// Images per run (`vmunet serve --http`: the most requests one dynamic batch holds).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// `vmunet serve --http`: the longest a request waits for its dynamic batch to fill, in
    /// milliseconds (None: the server's default).
    pub max_batch_delay_ms: Option<u64>,
    /// Scan formulation to export for this target: `scan` (ONNX Scan loop), `chunked` (no
    /// control flow, for TensorRT) or `custom` (the ai.vmunet::SelectiveScan operator).
    #[serde(default, deserialize_with = "scan_field")]
    pub scan: ScanForm,
    /// Chunk length when `scan = "chunked"`.
    pub chunk: Option<usize>,
    /// `scan = "chunked"`: the largest float32 intermediate of the scan, in MiB (bigger ones are
    /// split, which bounds the runtime's peak memory); default: the exporter's.
    pub chunk_memory_mb: Option<u64>,
    /// The CPU architecture of the device (`x86_64` or `aarch64`), when the profile is for one
    /// board: a bundle checks its binary against it.
    pub arch: Option<String>,
    /// TensorRT options.
    pub tensorrt: Option<TensorRtSection>,
    /// CUDA options.
    pub cuda: Option<CudaSection>,
    /// The memory the model may use on this device, in MiB (`vmunet bench --profile` reports
    /// the measured peak against it).
    pub memory_budget_mb: Option<usize>,
    /// The file the profile was read from (None when parsed from text).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

fn runtime_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RuntimeKind, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| serde::de::Error::custom(format!("field `runtime`: {e}")))
}

fn precision_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse() {
        Ok(p @ (Precision::Fp32 | Precision::Fp16 | Precision::Int8)) => Ok(p),
        _ => Err(serde::de::Error::custom(format!(
            "field `precision`: unknown precision `{s}` (expected fp32, fp16 or int8)"
        ))),
    }
}

fn scan_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ScanForm, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| serde::de::Error::custom(format!("field `scan`: {e}")))
}

fn default_providers() -> Vec<ProviderName> {
    vec![ProviderName::Cpu]
}
fn default_precision() -> Precision {
    Precision::Fp32
}
fn default_size() -> usize {
    256
}
fn default_batch() -> usize {
    1
}

/// A profile that cannot be used; names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ProfileError {
    /// File.
    pub path: PathBuf,
    /// What is wrong (field and reason).
    pub message: String,
}

fn expand(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

impl DeviceProfile {
    /// Reads and validates a profile.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let err = |message: String| ProfileError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut profile = Self::parse(&text).map_err(err)?;
        profile.path = Some(path.to_path_buf());
        Ok(profile)
    }

    /// Parses and validates profile text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: DeviceProfile = toml::from_str(text).map_err(|e| e.to_string())?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), String> {
        if self.runtime == RuntimeKind::Burn {
            return Err(
                "field `runtime`: a device profile runs an ONNX file: `ort` or `tract`".into(),
            );
        }
        if let Some(c) = self.chunk {
            if self.scan != ScanForm::Chunked {
                return Err("field `chunk`: only used with `scan = \"chunked\"`".into());
            }
            if c == 0 || c > 4096 {
                return Err(format!("field `chunk`: {c} is out of range (1..=4096)"));
            }
        }
        if self.providers.is_empty() {
            return Err(
                "field `providers`: list at least one provider (cpu, cuda, tensorrt)".into(),
            );
        }
        if self.runtime == RuntimeKind::Tract && self.providers != [ProviderName::Cpu] {
            return Err(
                "field `providers`: tract runs on the CPU only; use `providers = [\"cpu\"]`".into(),
            );
        }
        if let Some(t) = self.threads {
            if t == 0 || t > 1024 {
                return Err(format!("field `threads`: {t} is out of range (1..=1024)"));
            }
        }
        if self.input_size == 0 || !self.input_size.is_multiple_of(32) {
            return Err(format!(
                "field `input_size`: {} must be a positive multiple of 32",
                self.input_size
            ));
        }
        if let Some(d) = self.max_batch_delay_ms {
            if d > 10_000 {
                return Err(format!(
                    "field `max_batch_delay_ms`: {d} is out of range (0..=10000)"
                ));
            }
        }
        if self.batch == 0 || self.batch > 4096 {
            return Err(format!(
                "field `batch`: {} is out of range (1..=4096)",
                self.batch
            ));
        }
        if self.precision != Precision::Fp32 && !self.providers.contains(&ProviderName::Tensorrt) {
            return Err(format!(
                "field `precision`: {} needs the tensorrt provider; cpu and cuda run fp32 graphs",
                self.precision
            ));
        }
        if let Some(t) = &self.tensorrt {
            if t.workspace_mb == Some(0) {
                return Err("field `tensorrt.workspace_mb`: must be positive".into());
            }
            if t.device_id < 0 {
                return Err("field `tensorrt.device_id`: must be 0 or more".into());
            }
            if let Some(level) = t.builder_optimization_level.filter(|l| *l > 5) {
                return Err(format!(
                    "field `tensorrt.builder_optimization_level`: {level} is out of range (0..=5)"
                ));
            }
            if let Some(core) = t.dla_core.filter(|c| *c > 1) {
                return Err(format!(
                    "field `tensorrt.dla_core`: {core} is out of range (Jetson DLA cores are 0 and 1)"
                ));
            }
        }
        if self.tensorrt.is_some() && !self.providers.contains(&ProviderName::Tensorrt) {
            return Err(
                "section `[tensorrt]`: the profile does not list the tensorrt provider".into(),
            );
        }
        if let Some(c) = &self.cuda {
            if !self.providers.contains(&ProviderName::Cuda) {
                return Err("section `[cuda]`: the profile does not list the cuda provider".into());
            }
            if c.device_id.is_some_and(|d| d < 0) {
                return Err("field `cuda.device_id`: must be 0 or more".into());
            }
            if c.gpu_mem_limit_mb == Some(0) {
                return Err("field `cuda.gpu_mem_limit_mb`: must be positive".into());
            }
        }
        if self.chunk_memory_mb.is_some() && self.scan != ScanForm::Chunked {
            return Err("field `chunk_memory_mb`: only used with `scan = \"chunked\"`".into());
        }
        if self.chunk_memory_mb == Some(0) {
            return Err("field `chunk_memory_mb`: must be positive".into());
        }
        if let Some(a) = self
            .arch
            .as_deref()
            .filter(|a| !["x86_64", "aarch64"].contains(a))
        {
            return Err(format!(
                "field `arch`: `{a}` is not a known architecture (x86_64 or aarch64)"
            ));
        }
        if self.memory_budget_mb == Some(0) {
            return Err("field `memory_budget_mb`: must be positive".into());
        }
        Ok(())
    }

    /// The execution providers this profile lists, with their options, in order.
    pub fn providers(&self) -> Vec<crate::Provider> {
        use crate::provider::{CudaOptions, Provider, TensorRtOptions};
        let trt = self.tensorrt.clone().unwrap_or_default();
        let cuda = self.cuda.clone().unwrap_or_default();
        self.providers
            .iter()
            .map(|p| match p {
                ProviderName::Cpu => Provider::Cpu,
                ProviderName::Cuda => Provider::Cuda(CudaOptions {
                    device_id: cuda.device_id.unwrap_or(trt.device_id),
                    gpu_mem_limit_bytes: cuda.gpu_mem_limit_mb.map(|m| m << 20),
                    arena_extend: cuda.arena_extend,
                    conv_algo_search: cuda.conv_algo_search,
                }),
                ProviderName::Tensorrt => Provider::TensorRt(TensorRtOptions {
                    device_id: trt.device_id,
                    fp16: self.precision == Precision::Fp16,
                    int8: self.precision == Precision::Int8,
                    engine_cache: trt.engine_cache.as_deref().map(expand),
                    timing_cache: trt.timing_cache.as_deref().map(expand),
                    workspace_bytes: trt.workspace_mb.map(|m| m << 20),
                    builder_optimization_level: trt.builder_optimization_level,
                    dla_core: trt.dla_core,
                }),
            })
            .collect()
    }

    /// The file it was read from, for messages (empty when parsed from text).
    pub fn origin(&self) -> String {
        self.path
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    }

    /// Whether the profile runs on a GPU (it lists the CUDA or TensorRT provider).
    pub fn uses_gpu(&self) -> bool {
        self.providers
            .iter()
            .any(|p| matches!(p, ProviderName::Cuda | ProviderName::Tensorrt))
    }

    /// Whether TensorRT is among the providers (it compiles only standard operators, and its
    /// int8 needs symmetric activations).
    pub fn uses_tensorrt(&self) -> bool {
        self.providers.contains(&ProviderName::Tensorrt)
    }

    /// The provider names in order of preference, as reports print them (`TensorRT > CUDA`).
    pub fn provider_names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> PathBuf {
        vmunet_testdata::repo_root().join("devices")
    }

    #[test]
    fn shipped_profiles_are_valid() {
        let mut n = 0;
        for e in std::fs::read_dir(devices()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let prof = DeviceProfile::load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(!prof.name.is_empty());
                n += 1;
            }
        }
        assert!(n >= 4, "expected at least four profiles, found {n}");
        let nano = DeviceProfile::load(&devices().join("jetson-orin-nano.toml")).unwrap();
        assert_eq!(nano.providers[0], ProviderName::Tensorrt);
        assert_eq!(nano.runtime, RuntimeKind::Ort);
        assert_eq!(nano.arch.as_deref(), Some("aarch64"));
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let base = "name = \"x\"\nruntime = \"ort\"\n";
        for (extra, needle) in [
            ("colour = \"red\"\n", "colour"),
            ("providers = [\"vulkan\"]\n", "vulkan"),
            ("scan = \"loop\"\n", "field `scan`"),
            ("scan = \"scan\"\nchunk = 16\n", "field `chunk`"),
            ("scan = \"chunked\"\nchunk = 0\n", "field `chunk`"),
            ("input_size = 100\n", "input_size"),
            ("threads = 0\n", "threads"),
            ("batch = 0\n", "batch"),
            ("max_batch_delay_ms = 10001\n", "field `max_batch_delay_ms`"),
            ("precision = \"fp16\"\n", "precision"),
            (
                "providers = [\"tensorrt\"]\n[tensorrt]\nworkspace_mb = 0\n",
                "tensorrt.workspace_mb",
            ),
            (
                "providers = [\"tensorrt\"]\n[tensorrt]\nspeed = 1\n",
                "speed",
            ),
            (
                "providers = [\"tensorrt\"]\n[tensorrt]\nbuilder_optimization_level = 6\n",
                "tensorrt.builder_optimization_level",
            ),
            (
                "providers = [\"tensorrt\"]\n[tensorrt]\ndla_core = 2\n",
                "tensorrt.dla_core",
            ),
            ("[tensorrt]\nworkspace_mb = 64\n", "section `[tensorrt]`"),
            ("[cuda]\ngpu_mem_limit_mb = 64\n", "section `[cuda]`"),
            (
                "providers = [\"cuda\"]\n[cuda]\narena_extend = \"fast\"\n",
                "fast",
            ),
            ("memory_budget_mb = 0\n", "memory_budget_mb"),
            ("precision = \"mixed\"\n", "field `precision`"),
            ("chunk_memory_mb = 64\n", "field `chunk_memory_mb`"),
            ("arch = \"riscv64\"\n", "field `arch`"),
        ] {
            let e = DeviceProfile::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(needle), "`{extra}` -> {e}");
        }
        for runtime in ["onnx", "burn"] {
            let e = DeviceProfile::parse(&format!("name = \"x\"\nruntime = \"{runtime}\"\n"))
                .unwrap_err();
            assert!(e.contains("field `runtime`"), "{e}");
        }
        let e = DeviceProfile::parse("name = \"x\"\nruntime = \"tract\"\nproviders = [\"cuda\"]\n")
            .unwrap_err();
        assert!(e.contains("providers"), "{e}");
    }

    /// Every profile option reaches the provider options ONNX Runtime receives.
    #[test]
    fn agx_orin_profile_maps_to_provider_options() {
        use crate::Provider;
        let p = DeviceProfile::load(&devices().join("jetson-agx-orin.toml")).unwrap();
        let providers = p.providers();
        assert_eq!(
            providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
            ["TensorRT", "CUDA", "CPU"]
        );
        let trt = providers[0].ort_options();
        let get = |o: &[(&str, String)], k: &str| {
            o.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} missing from {o:?}"))
        };
        assert_eq!(get(&trt, "trt_fp16_enable"), "1");
        assert_eq!(get(&trt, "trt_int8_enable"), "0");
        assert_eq!(
            get(&trt, "trt_max_workspace_size"),
            (4096usize << 20).to_string()
        );
        assert_eq!(get(&trt, "trt_engine_cache_enable"), "1");
        assert!(get(&trt, "trt_engine_cache_path").ends_with(".cache/vmunet/trt-engines"));
        assert!(get(&trt, "trt_timing_cache_path").ends_with(".cache/vmunet/trt-timing"));
        assert_eq!(get(&trt, "trt_builder_optimization_level"), "3");
        assert_eq!(get(&trt, "trt_dla_enable"), "1");
        assert_eq!(get(&trt, "trt_dla_core"), "0");
        let cuda = providers[1].ort_options();
        assert_eq!(get(&cuda, "device_id"), "0");
        assert_eq!(get(&cuda, "arena_extend_strategy"), "kSameAsRequested");
        assert_eq!(get(&cuda, "gpu_mem_limit"), (8192usize << 20).to_string());
        assert_eq!(providers[2], Provider::Cpu);
        assert_eq!(p.memory_budget_mb, Some(16384));
        // The Orin Nano has no DLA: its profile must not ask for one.
        let nano = DeviceProfile::load(&devices().join("jetson-orin-nano.toml")).unwrap();
        assert!(nano.providers()[0]
            .ort_options()
            .iter()
            .all(|(k, _)| !k.starts_with("trt_dla")));
    }
}
