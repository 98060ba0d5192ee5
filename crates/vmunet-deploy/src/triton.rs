//! `vmunet bundle --triton`: a Triton Inference Server model repository for the ONNX Runtime
//! back-end.
//!
//! ```text
//! REPO/NAME/config.pbtxt               model configuration (protobuf text format)
//! REPO/NAME/1/model.onnx               the model, version 1
//! REPO/NAME/libvmunet_ort_ops.so       custom-scan models only; loaded by `model_operations`
//! ```
//!
//! Shapes come from the model's declared input and output (batch dimension dropped when it is
//! free, so Triton batches dynamically); a device profile adds the TensorRT accelerator
//! (precision, workspace, engine and timing caches, builder level, DLA), the CUDA provider's
//! memory settings and the thread count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vmunet_onnx_ir::pb::tensor_proto::DataType;
use vmunet_runtime::{uses_custom_scan, DeviceProfile, ModelDim, ModelFile, Provider};

use crate::bundle::ORT_OPS_LIB;
use crate::fsutil::{copy_durable, sync_dir, write_durable};
use crate::hash::sha256_file;
use crate::DeployError;

/// What to write.
#[derive(Debug, Clone)]
pub struct TritonSpec {
    /// The ONNX model.
    pub model: PathBuf,
    /// Device profile for the accelerator settings (None: CPU instances, no accelerator).
    pub profile: Option<DeviceProfile>,
    /// Model name in the repository (default: the file stem).
    pub name: Option<String>,
    /// Largest batch Triton forms (models with a free batch dimension).
    pub max_batch: usize,
    /// `libvmunet_ort_ops.so` (custom-scan models; built for the server's architecture).
    pub ort_ops: Option<PathBuf>,
    /// Where the repository is mounted on the server (absolute; Triton loads the custom-op
    /// library from there).
    pub mount: String,
    /// Folder on the server for TensorRT's engine and timing caches.
    pub trt_cache: String,
    /// Repository folder (created if missing; an existing model of the same name is replaced).
    pub out: PathBuf,
}

/// What [`write_triton_repo`] wrote.
#[derive(Debug, Clone)]
pub struct TritonReport {
    /// `REPO/NAME`.
    pub model_dir: PathBuf,
    /// `REPO/NAME/config.pbtxt`.
    pub config: PathBuf,
    /// Model name.
    pub name: String,
    /// `max_batch_size` (0: the model's batch is fixed).
    pub max_batch_size: usize,
    /// The custom-op library was copied and named in `model_operations`.
    pub custom_op: bool,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

fn triton_type(t: DataType) -> &'static str {
    match t {
        DataType::Float16 => "TYPE_FP16",
        _ => "TYPE_FP32",
    }
}

fn dims(d: &[ModelDim]) -> String {
    d.iter()
        .map(|d| match d {
            ModelDim::Fixed(v) => v.to_string(),
            ModelDim::Free(_) => "-1".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A valid Triton model name from a file stem.
fn model_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vmunet".into());
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "vmunet".into()
    } else {
        s
    }
}

/// The `config.pbtxt` text for `file` (the model) as `spec` says.
pub fn config_text(
    file: &ModelFile,
    sha256: &str,
    name: &str,
    spec: &TritonSpec,
) -> Result<(String, usize, Vec<String>), DeployError> {
    let mut warnings = Vec::new();
    let input = &file.input;
    let output = &file.output;
    if input.dims.len() != 4 {
        return Err(DeployError::invalid(
            &file.path,
            format!("input {input} is not NCHW"),
        ));
    }
    let batch_free = matches!(input.dims[0], ModelDim::Free(_));
    let (max_batch, in_dims) = if batch_free {
        (spec.max_batch.max(1), &input.dims[1..])
    } else {
        (0, &input.dims[..])
    };
    let out_dims: Vec<ModelDim> = if output.dims.len() == 4 {
        if batch_free {
            output.dims[1..].to_vec()
        } else {
            output.dims.clone()
        }
    } else {
        // Undeclared output shape: classes from the metadata, the input's H and W.
        let classes = file.metadata.class_names.len().max(1);
        let mut d = vec![ModelDim::Fixed(classes)];
        d.extend(input.dims[2..].iter().cloned());
        if !batch_free {
            d.insert(0, ModelDim::Fixed(1));
        }
        d
    };
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by vmunet {} from {} (SHA-256 {sha256}){}.",
        crate::TOOLKIT_VERSION,
        file.path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        spec.profile
            .as_ref()
            .map(|p| format!(", device profile `{}`", p.name))
            .unwrap_or_default()
    );
    let _ = writeln!(c, "name: {}", quote(name));
    let _ = writeln!(c, "backend: \"onnxruntime\"");
    let _ = writeln!(c, "max_batch_size: {max_batch}");
    let _ = writeln!(
        c,
        "input [\n  {{\n    name: {}\n    data_type: {}\n    format: FORMAT_NCHW\n    dims: [ {} ]\n  }}\n]",
        quote(&input.name),
        triton_type(input.elem),
        dims(in_dims)
    );
    let _ = writeln!(
        c,
        "output [\n  {{\n    name: {}\n    data_type: {}\n    dims: [ {} ]\n  }}\n]",
        quote(&output.name),
        triton_type(file.output_elem),
        dims(&out_dims)
    );
    if max_batch > 0 {
        let preferred: Vec<String> = spec
            .profile
            .as_ref()
            .map(|p| p.batch)
            .filter(|b| *b > 1 && *b <= max_batch)
            .map(|b| vec![b.to_string()])
            .unwrap_or_default();
        c.push_str("dynamic_batching {\n");
        if !preferred.is_empty() {
            let _ = writeln!(c, "  preferred_batch_size: [ {} ]", preferred.join(", "));
        }
        c.push_str("  max_queue_delay_microseconds: 2000\n}\n");
    }
    let providers = spec
        .profile
        .as_ref()
        .map(|p| p.providers())
        .unwrap_or_default();
    let gpu = providers
        .iter()
        .any(|p| matches!(p, Provider::Cuda(_) | Provider::TensorRt(_)));
    let device_id = providers.iter().find_map(|p| match p {
        Provider::Cuda(o) => Some(o.device_id),
        Provider::TensorRt(o) => Some(o.device_id),
        Provider::Cpu => None,
    });
    match (gpu, device_id) {
        (true, Some(id)) => {
            let _ = writeln!(
                c,
                "instance_group [\n  {{\n    count: 1\n    kind: KIND_GPU\n    gpus: [ {id} ]\n  }}\n]"
            );
        }
        _ => c.push_str("instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n"),
    }
    if let Some(Provider::TensorRt(t)) = providers
        .iter()
        .find(|p| matches!(p, Provider::TensorRt(_)))
    {
        let precision = if t.int8 {
            "INT8"
        } else if t.fp16 {
            "FP16"
        } else {
            "FP32"
        };
        let mut params: Vec<(&str, String)> = vec![("precision_mode", precision.into())];
        if let Some(ws) = t.workspace_bytes {
            params.push(("max_workspace_size_bytes", ws.to_string()));
        }
        let cache = spec.trt_cache.trim_end_matches('/');
        if t.engine_cache.is_some() {
            params.push(("trt_engine_cache_enable", "1".into()));
            params.push(("trt_engine_cache_path", format!("{cache}/{name}/engines")));
        }
        if t.timing_cache.is_some() {
            params.push(("trt_timing_cache_enable", "1".into()));
            params.push(("trt_timing_cache_path", format!("{cache}/{name}/timing")));
        }
        if let Some(level) = t.builder_optimization_level {
            params.push(("trt_builder_optimization_level", level.to_string()));
        }
        if let Some(core) = t.dla_core {
            params.push(("trt_dla_enable", "1".into()));
            params.push(("trt_dla_core", core.to_string()));
        }
        c.push_str(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator [\n      {\n        name: \"tensorrt\"\n",
        );
        for (k, v) in params {
            let _ = writeln!(
                c,
                "        parameters {{ key: {} value: {} }}",
                quote(k),
                quote(&v)
            );
        }
        c.push_str("      }\n    ]\n  }\n}\n");
        if uses_custom_scan(file) {
            warnings.push(
                "TensorRT cannot run the custom scan operator: ONNX Runtime partitions the \
                 graph and runs SelectiveScan on the CPU (export with --scan chunked for a \
                 whole-TensorRT model)"
                    .into(),
            );
        }
    }
    // Model-level parameters of the ONNX Runtime back-end: threads and the CUDA provider's
    // memory settings.
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(t) = spec.profile.as_ref().and_then(|p| p.threads) {
        params.push(("intra_op_thread_count", t.to_string()));
    }
    if let Some(Provider::Cuda(o)) = providers.iter().find(|p| matches!(p, Provider::Cuda(_))) {
        if let Some(b) = o.gpu_mem_limit_bytes {
            params.push(("gpu_mem_limit", b.to_string()));
        }
        if let Some(a) = o.arena_extend {
            params.push(("arena_extend_strategy", a.ort_index().to_string()));
        }
        if let Some(s) = o.conv_algo_search {
            params.push(("cudnn_conv_algo_search", s.ort_index().to_string()));
        }
    }
    for (k, v) in params {
        let _ = writeln!(
            c,
            "parameters {{ key: {} value: {{ string_value: {} }} }}",
            quote(k),
            quote(&v)
        );
    }
    if uses_custom_scan(file) {
        let _ = writeln!(
            c,
            "model_operations {{ op_library_filename: [ {} ] }}",
            quote(&format!(
                "{}/{name}/{ORT_OPS_LIB}",
                spec.mount.trim_end_matches('/')
            ))
        );
    }
    Ok((c, max_batch, warnings))
}

/// Writes `REPO/NAME/{config.pbtxt, 1/model.onnx}` (and the custom-op library for
/// custom-scan models), assembled beside and renamed into place.
pub fn write_triton_repo(spec: &TritonSpec) -> Result<TritonReport, DeployError> {
    if !spec.mount.starts_with('/') {
        return Err(DeployError::invalid(
            &spec.out,
            format!(
                "the repository mount `{}` must be an absolute path on the server",
                spec.mount
            ),
        ));
    }
    let file = ModelFile::read(&spec.model)?;
    let name = match &spec.name {
        Some(n) => {
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(DeployError::invalid(
                    &spec.out,
                    format!("model name `{n}`: use letters, digits, `_` and `-`"),
                ));
            }
            n.clone()
        }
        None => model_name(&spec.model),
    };
    let custom = uses_custom_scan(&file);
    let ops = match (&spec.ort_ops, custom) {
        (Some(p), true) => Some(p.clone()),
        (None, true) => {
            return Err(DeployError::invalid(
                &spec.model,
                "uses the custom scan operator: give --ort-ops libvmunet_ort_ops.so (built \
                 for the server: `cargo build --release -p vmunet-ort-ops`)",
            ))
        }
        (_, false) => None,
    };
    if let Some(lib) = &ops {
        crate::elf::Arch::of_file(lib)?;
    }
    let sha = sha256_file(&spec.model)?;
    let (config, max_batch_size, warnings) = config_text(&file, &sha, &name, spec)?;

    std::fs::create_dir_all(&spec.out).map_err(DeployError::io(&spec.out))?;
    let model_dir = spec.out.join(&name);
    let tmp = spec
        .out
        .join(format!(".{name}.{}.partial", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let build = || -> Result<(), DeployError> {
        std::fs::create_dir_all(tmp.join("1")).map_err(DeployError::io(&tmp))?;
        copy_durable(&spec.model, &tmp.join("1/model.onnx"))?;
        if let Some(lib) = &ops {
            copy_durable(lib, &tmp.join(ORT_OPS_LIB))?;
        }
        write_durable(&tmp.join("config.pbtxt"), config.as_bytes())?;
        sync_dir(&tmp.join("1"))
    };
    if let Err(e) = build() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if model_dir.exists() {
        let old = spec.out.join(format!(".{name}.{}.old", std::process::id()));
        std::fs::rename(&model_dir, &old).map_err(DeployError::io(&model_dir))?;
        std::fs::rename(&tmp, &model_dir).map_err(DeployError::io(&model_dir))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, &model_dir).map_err(DeployError::io(&model_dir))?;
    }
    sync_dir(&spec.out)?;
    Ok(TritonReport {
        config: model_dir.join("config.pbtxt"),
        model_dir,
        name,
        max_batch_size,
        custom_op: ops.is_some(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str, profile: Option<&str>, out: &Path) -> TritonSpec {
        TritonSpec {
            model: vmunet_testdata::golden(model),
            profile: profile.map(|p| {
                DeviceProfile::load(&vmunet_testdata::repo_root().join("devices").join(p)).unwrap()
            }),
            name: None,
            max_batch: 8,
            ort_ops: None,
            mount: "/models".into(),
            trt_cache: "/tmp/vmunet-trt".into(),
            out: out.to_path_buf(),
        }
    }

    #[test]
    fn configs_carry_shapes_accelerators_and_the_op_library() {
        let dir = tempfile::tempdir().unwrap();
        let r = write_triton_repo(&spec(
            "tiny-scan.onnx",
            Some("jetson-orin-nano.toml"),
            dir.path(),
        ))
        .unwrap();
        let text = std::fs::read_to_string(&r.config).unwrap();
        assert!(text.contains("name: \"tiny-scan\""), "{text}");
        assert!(text.contains("precision_mode\" value: \"FP16\""), "{text}");
        assert!(text.contains("kind: KIND_GPU"), "{text}");
        assert!(text.contains("gpu_mem_limit"), "{text}");
        assert!(!text.contains("model_operations"), "{text}");
        assert!(r.model_dir.join("1/model.onnx").is_file());
        // CPU profile: no accelerator; custom model without the library: a clear error.
        let r = write_triton_repo(&spec("tiny-scan.onnx", None, dir.path())).unwrap();
        let text = std::fs::read_to_string(&r.config).unwrap();
        assert!(
            text.contains("KIND_CPU") && !text.contains("tensorrt"),
            "{text}"
        );
        let e = write_triton_repo(&spec("tiny-custom.onnx", None, dir.path())).unwrap_err();
        assert!(e.to_string().contains("--ort-ops"), "{e}");
        let mut s = spec("tiny-scan.onnx", None, dir.path());
        s.mount = "models".into();
        assert!(write_triton_repo(&s)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        // Nothing half-written is left in the repository.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["tiny-scan"]);
    }
}
