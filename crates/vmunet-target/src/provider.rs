//! Execution providers for ONNX Runtime and their options, mapped to the provider-option keys
//! ONNX Runtime documents (`device_id`, `trt_fp16_enable`, `gpu_mem_limit`, ...). The mapping
//! ([`Provider::ort_options`]) is plain data, so it is unit-tested on machines without a GPU;
//! `ort_rt` hands exactly these pairs to ONNX Runtime when it registers the provider.

use std::path::PathBuf;

/// How the CUDA provider's memory arena grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArenaExtend {
    /// Double the arena (ONNX Runtime's default): fewer allocations, more memory held.
    NextPowerOfTwo = 0,
    /// Grow by exactly what is requested: the least memory held (shared-memory Jetsons).
    SameAsRequested = 1,
}

impl ArenaExtend {
    /// ONNX Runtime's name for the strategy (the `arena_extend_strategy` provider option).
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::NextPowerOfTwo => "kNextPowerOfTwo",
            Self::SameAsRequested => "kSameAsRequested",
        }
    }

    /// ONNX Runtime's number for it (`0`, `1`), as Triton's ONNX Runtime back-end takes it.
    pub fn ort_index(self) -> u8 {
        self as u8
    }
}

/// How cuDNN picks convolution algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgoSearch {
    /// Benchmark every algorithm once (ONNX Runtime's default; slow first run).
    Exhaustive = 0,
    /// cuDNN's heuristics.
    Heuristic = 1,
    /// The default algorithm.
    Default = 2,
}

impl ConvAlgoSearch {
    /// ONNX Runtime's name for the search (the `cudnn_conv_algo_search` provider option).
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::Exhaustive => "EXHAUSTIVE",
            Self::Heuristic => "HEURISTIC",
            Self::Default => "DEFAULT",
        }
    }

    /// ONNX Runtime's number for it (`0`, `1`, `2`), as Triton's ONNX Runtime back-end takes it.
    pub fn ort_index(self) -> u8 {
        self as u8
    }
}

/// CUDA execution provider options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CudaOptions {
    /// GPU index.
    pub device_id: i32,
    /// Cap on the provider's memory arena, in bytes (None: no cap).
    pub gpu_mem_limit_bytes: Option<usize>,
    /// Arena growth (None: ONNX Runtime's default).
    pub arena_extend: Option<ArenaExtend>,
    /// cuDNN convolution algorithm search (None: ONNX Runtime's default).
    pub conv_algo_search: Option<ConvAlgoSearch>,
}

/// TensorRT execution provider options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TensorRtOptions {
    /// GPU index.
    pub device_id: i32,
    /// Allow fp16 kernels.
    pub fp16: bool,
    /// Allow int8 kernels (needs a QDQ model or a calibration table).
    pub int8: bool,
    /// Engine cache folder (None: no cache, the engine is built at every start).
    pub engine_cache: Option<PathBuf>,
    /// Timing cache folder (None: no cache).
    pub timing_cache: Option<PathBuf>,
    /// Builder workspace in bytes (None: TensorRT's default).
    pub workspace_bytes: Option<usize>,
    /// Builder optimisation level 0..=5 (None: TensorRT's default, 3).
    pub builder_optimization_level: Option<u8>,
    /// Deep-learning accelerator core (Jetson AGX Orin / Xavier: 0 or 1); layers DLA cannot run
    /// fall back to the GPU. None: GPU only.
    pub dla_core: Option<u32>,
}

/// An execution provider and its options.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// ONNX Runtime's CPU provider (always available).
    Cpu,
    /// CUDA.
    Cuda(CudaOptions),
    /// TensorRT.
    TensorRt(TensorRtOptions),
}

/// `1` / `0`, as ONNX Runtime's provider options spell booleans.
fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

impl Provider {
    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Cpu => "CPU",
            Provider::Cuda(_) => "CUDA",
            Provider::TensorRt(_) => "TensorRT",
        }
    }

    /// The provider options as ONNX Runtime's keys and values, in a fixed order (empty for the
    /// CPU provider).
    pub fn ort_options(&self) -> Vec<(&'static str, String)> {
        let mut o = Vec::new();
        match self {
            Provider::Cpu => {}
            Provider::Cuda(c) => {
                o.push(("device_id", c.device_id.to_string()));
                if let Some(b) = c.gpu_mem_limit_bytes {
                    o.push(("gpu_mem_limit", b.to_string()));
                }
                if let Some(a) = c.arena_extend {
                    o.push(("arena_extend_strategy", a.ort_name().into()));
                }
                if let Some(s) = c.conv_algo_search {
                    o.push(("cudnn_conv_algo_search", s.ort_name().into()));
                }
            }
            Provider::TensorRt(t) => {
                o.push(("device_id", t.device_id.to_string()));
                o.push(("trt_fp16_enable", flag(t.fp16)));
                o.push(("trt_int8_enable", flag(t.int8)));
                if let Some(ws) = t.workspace_bytes {
                    o.push(("trt_max_workspace_size", ws.to_string()));
                }
                if let Some(dir) = &t.engine_cache {
                    o.push(("trt_engine_cache_enable", flag(true)));
                    o.push(("trt_engine_cache_path", dir.display().to_string()));
                }
                if let Some(dir) = &t.timing_cache {
                    o.push(("trt_timing_cache_enable", flag(true)));
                    o.push(("trt_timing_cache_path", dir.display().to_string()));
                }
                if let Some(level) = t.builder_optimization_level {
                    o.push(("trt_builder_optimization_level", level.to_string()));
                }
                if let Some(core) = t.dla_core {
                    o.push(("trt_dla_enable", flag(true)));
                    o.push(("trt_dla_core", core.to_string()));
                }
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(o: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        o.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn tensorrt_options_use_onnx_runtime_keys() {
        let t = Provider::TensorRt(TensorRtOptions {
            device_id: 1,
            fp16: true,
            int8: false,
            engine_cache: Some("/var/cache/engines".into()),
            timing_cache: Some("/var/cache/timing".into()),
            workspace_bytes: Some(2 << 30),
            builder_optimization_level: Some(5),
            dla_core: Some(0),
        });
        let o = t.ort_options();
        for (k, v) in [
            ("device_id", "1"),
            ("trt_fp16_enable", "1"),
            ("trt_int8_enable", "0"),
            ("trt_max_workspace_size", "2147483648"),
            ("trt_engine_cache_enable", "1"),
            ("trt_engine_cache_path", "/var/cache/engines"),
            ("trt_timing_cache_enable", "1"),
            ("trt_timing_cache_path", "/var/cache/timing"),
            ("trt_builder_optimization_level", "5"),
            ("trt_dla_enable", "1"),
            ("trt_dla_core", "0"),
        ] {
            assert_eq!(get(&o, k), Some(v), "{k} in {o:?}");
        }
        assert_eq!(o.len(), 11);
        // Unset options are left to ONNX Runtime's defaults, not written.
        let o = Provider::TensorRt(TensorRtOptions::default()).ort_options();
        assert_eq!(
            o.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["device_id", "trt_fp16_enable", "trt_int8_enable"]
        );
    }

    #[test]
    fn cuda_options_use_onnx_runtime_keys() {
        let c = Provider::Cuda(CudaOptions {
            device_id: 0,
            gpu_mem_limit_bytes: Some(3 << 30),
            arena_extend: Some(ArenaExtend::SameAsRequested),
            conv_algo_search: Some(ConvAlgoSearch::Heuristic),
        });
        let o = c.ort_options();
        assert_eq!(get(&o, "device_id"), Some("0"));
        assert_eq!(get(&o, "gpu_mem_limit"), Some("3221225472"));
        assert_eq!(get(&o, "arena_extend_strategy"), Some("kSameAsRequested"));
        assert_eq!(get(&o, "cudnn_conv_algo_search"), Some("HEURISTIC"));
        assert!(Provider::Cpu.ort_options().is_empty());
        assert_eq!(
            Provider::Cuda(CudaOptions::default()).ort_options().len(),
            1
        );
    }
}
