//! `config.pbtxt`, the model configuration in protobuf text format: tensors, dynamic
//! batching, the instance group, the TensorRT accelerator, the ONNX Runtime back-end's
//! parameters and, for custom-scan models, the operator library.

use std::fmt::Write as _;

use vmunet_onnx_ir::pb::tensor_proto::DataType;
use vmunet_runtime::target::{Provider, TensorRtOptions};
use vmunet_runtime::{uses_custom_scan, ModelDim, ModelFile};

use super::spec::TritonSpec;
use crate::bundle::ORT_OPS_LIB;
use crate::DeployError;

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

/// The `config.pbtxt` text for `file` (the model) as `spec` says.
pub fn config_text(
    file: &ModelFile,
    sha256: &str,
    name: &str,
    spec: &TritonSpec,
) -> Result<(String, usize, Vec<String>), DeployError> {
    let mut warnings = Vec::new();
    let shapes = Shapes::of(file, spec.max_batch)?;
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
    let _ = writeln!(c, "max_batch_size: {}", shapes.max_batch);
    tensors(&mut c, file, &shapes);
    batching(&mut c, spec, shapes.max_batch);
    let providers = spec
        .profile
        .as_ref()
        .map(|p| p.providers())
        .unwrap_or_default();
    instance_group(&mut c, &providers);
    if let Some(Provider::TensorRt(t)) = providers
        .iter()
        .find(|p| matches!(p, Provider::TensorRt(_)))
    {
        tensorrt_accelerator(&mut c, t, spec, name);
    }
    // What the device target finds in the model (scan form, TensorRT and the custom op, ...).
    if let Some(p) = &spec.profile {
        warnings.extend(p.check(&file.metadata).into_iter().map(|f| f.message));
    }
    ort_parameters(&mut c, spec, &providers);
    model_operations(&mut c, file, name, spec);
    Ok((c, shapes.max_batch, warnings))
}

/// The shapes Triton is told: the batch dimension dropped when it is free (Triton batches).
struct Shapes<'a> {
    /// `max_batch_size` (0: the model's batch is fixed).
    max_batch: usize,
    input: &'a [ModelDim],
    output: Vec<ModelDim>,
}

impl<'a> Shapes<'a> {
    /// The shapes of `file` (an NCHW input), with at most `max_batch` images a batch.
    fn of(file: &'a ModelFile, max_batch: usize) -> Result<Self, DeployError> {
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
            (max_batch.max(1), &input.dims[1..])
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
        Ok(Self {
            max_batch,
            input: in_dims,
            output: out_dims,
        })
    }
}

/// The `input` and `output` sections.
fn tensors(c: &mut String, file: &ModelFile, shapes: &Shapes) {
    let _ = writeln!(
        c,
        "input [\n  {{\n    name: {}\n    data_type: {}\n    format: FORMAT_NCHW\n    dims: [ {} ]\n  }}\n]",
        quote(&file.input.name),
        triton_type(file.input.elem),
        dims(shapes.input)
    );
    let _ = writeln!(
        c,
        "output [\n  {{\n    name: {}\n    data_type: {}\n    dims: [ {} ]\n  }}\n]",
        quote(&file.output.name),
        triton_type(file.output_elem),
        dims(&shapes.output)
    );
}

/// `dynamic_batching` (models with a free batch dimension), preferring the profile's batch.
fn batching(c: &mut String, spec: &TritonSpec, max_batch: usize) {
    if max_batch == 0 {
        return;
    }
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

/// One instance, on the GPU of the profile's CUDA or TensorRT provider, else on the CPU.
fn instance_group(c: &mut String, providers: &[Provider]) {
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
}

/// The TensorRT execution accelerator: precision, workspace, engine and timing caches (under
/// `spec.trt_cache/NAME`), builder level, DLA.
fn tensorrt_accelerator(c: &mut String, t: &TensorRtOptions, spec: &TritonSpec, name: &str) {
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
}

/// Model-level parameters of the ONNX Runtime back-end: threads and the CUDA provider's
/// memory settings.
fn ort_parameters(c: &mut String, spec: &TritonSpec, providers: &[Provider]) {
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
}

/// `model_operations`: the custom-op library, for custom-scan models, where the server
/// mounts the repository.
fn model_operations(c: &mut String, file: &ModelFile, name: &str, spec: &TritonSpec) {
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
}
