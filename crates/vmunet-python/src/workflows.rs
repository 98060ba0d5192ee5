//! The workflows, as the command line runs them: export, fp16, int8, parity and evaluation.
//! Each returns its report as (text, JSON text): the words `vmunet` prints and the JSON it
//! writes with `--json`; the package turns the JSON into dataclasses.

use std::path::PathBuf;

use pyo3::prelude::*;
use vmunet_compress::{CompressOutcome, CompressSource, Fp16Options, Int8Job, Int8Request};
use vmunet_onnx::{export_to_file, ExportRequest};
use vmunet_runtime::Session;

use crate::error;
use crate::session::OpenArgs;

/// Parses a name the way the command line does, naming the argument when it is unknown.
fn parse<T: std::str::FromStr>(arg: &str, value: Option<&str>) -> PyResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| error::input(format!("{arg}={v:?}: {e}")))
        })
        .transpose()
}

/// Reads a device profile.
fn profile(path: Option<PathBuf>) -> PyResult<Option<vmunet_runtime::DeviceProfile>> {
    path.map(|p| vmunet_runtime::DeviceProfile::load(&p).map_err(error::general))
        .transpose()
}

/// `vmunet export`: a checkpoint (vmunet `.bpk`, official `.pth`, `.safetensors`) to ONNX.
#[pyfunction]
#[pyo3(signature = (checkpoint, out, scan=None, size=None, opset=vmunet_onnx::DEFAULT_OPSET, dynamic_hw=false, max_size=1024, chunk=None, chunk_memory_mb=None, class_names=None, preprocessing=None, profile=None))]
#[allow(clippy::too_many_arguments)]
pub fn export(
    py: Python<'_>,
    checkpoint: PathBuf,
    out: PathBuf,
    scan: Option<String>,
    size: Option<usize>,
    opset: i64,
    dynamic_hw: bool,
    max_size: usize,
    chunk: Option<usize>,
    chunk_memory_mb: Option<u64>,
    class_names: Option<Vec<String>>,
    preprocessing: Option<String>,
    profile: Option<PathBuf>,
) -> PyResult<(String, String)> {
    let request = ExportRequest {
        size,
        opset,
        scan: parse("scan", scan.as_deref())?,
        chunk,
        chunk_memory_mb,
        dynamic_hw,
        max_size,
        class_names,
        preprocessing: parse("preprocessing", preprocessing.as_deref())?,
    };
    let profile = self::profile(profile)?;
    py.detach(|| {
        let loaded = vmunet_model::ModelSource::Checkpoint(checkpoint.clone())
            .load()
            .map_err(|e| error::model(&e))?;
        let summary =
            export_to_file(&loaded, &request, profile.as_ref(), &out).map_err(error::general)?;
        Ok((summary.to_string(), summary.to_json().to_string()))
    })
}

fn outcome(o: CompressOutcome) -> (String, String) {
    (o.text, o.json.to_string())
}

fn source(
    model: PathBuf,
    size: Option<usize>,
    calib: Option<PathBuf>,
    calib_count: usize,
) -> CompressSource {
    CompressSource {
        model,
        size,
        calib,
        calib_count,
    }
}

/// `vmunet compress fp16`.
#[pyfunction]
#[pyo3(signature = (model, out, calib=None, calib_count=32, size=None, keep_fp32=Vec::new(), keep_io_fp32=false, layernorm_fp16=false))]
#[allow(clippy::too_many_arguments)]
pub fn fp16(
    py: Python<'_>,
    model: PathBuf,
    out: PathBuf,
    calib: Option<PathBuf>,
    calib_count: usize,
    size: Option<usize>,
    keep_fp32: Vec<String>,
    keep_io_fp32: bool,
    layernorm_fp16: bool,
) -> PyResult<(String, String)> {
    let opts = Fp16Options {
        keep_fp32,
        keep_io_fp32,
        keep_layernorm_fp32: !layernorm_fp16,
        keep_scan_fp32: true,
    };
    let src = source(model, size, calib, calib_count);
    py.detach(|| vmunet_compress::fp16_file(&src, &opts, &out))
        .map(outcome)
        .map_err(error::general)
}

/// `vmunet compress int8`.
#[pyfunction]
#[pyo3(signature = (model, out, calib=None, calib_count=32, size=None, format=None, method="minmax".to_string(), activations=None, symmetric=false, reduce_range=false, quantize_scan_proj=false, quantize_output_layer=false, fp32_constants=false, exclude=Vec::new(), dynamic=false, profile=None))]
#[allow(clippy::too_many_arguments)]
pub fn int8(
    py: Python<'_>,
    model: PathBuf,
    out: PathBuf,
    calib: Option<PathBuf>,
    calib_count: usize,
    size: Option<usize>,
    format: Option<String>,
    method: String,
    activations: Option<String>,
    symmetric: bool,
    reduce_range: bool,
    quantize_scan_proj: bool,
    quantize_output_layer: bool,
    fp32_constants: bool,
    exclude: Vec<String>,
    dynamic: bool,
    profile: Option<PathBuf>,
) -> PyResult<(String, String)> {
    if calib.is_some() && dynamic {
        return Err(error::input(
            "calib= and dynamic=True contradict each other: dynamic quantisation calibrates nothing",
        ));
    }
    let job = Int8Job {
        request: Int8Request {
            format: parse("format", format.as_deref())?,
            method: parse("method", Some(method.as_str()))?
                .unwrap_or(vmunet_compress::Method::MinMax),
            activations: parse("activations", activations.as_deref())?,
            symmetric,
            reduce_range,
            quantize_scan_proj,
            quantize_output_layer,
            fp32_constants,
        },
        exclude,
        dynamic,
        profile: self::profile(profile)?,
    };
    let src = source(model, size, calib, calib_count);
    py.detach(|| vmunet_compress::int8_file(&src, &job, &out))
        .map(outcome)
        .map_err(error::general)
}

/// `vmunet parity`: every runtime on `model` against a reference (the checkpoint in burn, or
/// tract). Returns the Markdown table and the report.
#[pyfunction]
#[pyo3(signature = (model, checkpoint=None, images=None, max_images=8, random=2, threshold=1e-4, size=256, ort_library=None))]
#[allow(clippy::too_many_arguments)]
pub fn parity(
    py: Python<'_>,
    model: PathBuf,
    checkpoint: Option<PathBuf>,
    images: Option<PathBuf>,
    max_images: usize,
    random: usize,
    threshold: f32,
    size: usize,
    ort_library: Option<PathBuf>,
) -> PyResult<(String, String)> {
    let job = vmunet_runtime::ParityJob {
        model,
        random,
        images,
        max_images,
        size,
        threshold,
        ort_library,
    };
    py.detach(|| {
        let reference = match checkpoint {
            Some(ck) => {
                let loaded = vmunet_model::ModelSource::Checkpoint(ck)
                    .load()
                    .map_err(|e| error::model(&e))?;
                let label = loaded.label.clone();
                let rt = vmunet_runtime::BurnRuntime::new(loaded.model);
                Some((Box::new(rt) as Box<dyn vmunet_runtime::Runtime>, label))
            }
            None => None,
        };
        let report = vmunet_runtime::check_export(&job, reference).map_err(error::general)?;
        let json = serde_json::to_value(&report).map_err(error::general)?;
        let mut json = json;
        if let Some(o) = json.as_object_mut() {
            o.insert("passed".into(), report.passed().into());
        }
        Ok((report.markdown(), json.to_string()))
    })
}

/// `vmunet eval`: the paper's metrics for an ONNX model (`model`, in `runtime` or `profile`)
/// or a checkpoint in burn (`checkpoint`) on a dataset folder (ISIC layout, a folder with
/// `images/` and `masks/`, or Synapse).
#[pyfunction]
#[pyo3(signature = (data, model=None, checkpoint=None, runtime=None, profile=None, threads=None, ort_library=None, size=None, batch_size=8, max_images=None, threshold=0.5))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    py: Python<'_>,
    data: PathBuf,
    model: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    runtime: Option<String>,
    profile: Option<PathBuf>,
    threads: Option<usize>,
    ort_library: Option<PathBuf>,
    size: Option<usize>,
    batch_size: usize,
    max_images: Option<usize>,
    threshold: f64,
) -> PyResult<(String, String)> {
    use vmunet_train::eval::{evaluate_checkpoint, evaluate_session, EvalOptions};
    let opts = EvalOptions {
        size,
        batch_size: batch_size.max(1),
        max_images,
        threshold,
    };
    let report = match (checkpoint, model) {
        (Some(_), Some(_)) => {
            return Err(error::input(
                "give model= (an ONNX file) or checkpoint= (run in burn), not both",
            ))
        }
        (Some(ck), None) => {
            if !ck.is_file() {
                return Err(error::raise(
                    error::Kind::ModelNotFound,
                    format!("{}: no such checkpoint file", ck.display()),
                ));
            }
            py.detach(|| evaluate_checkpoint(&ck, &data, &opts, |_, _| {}))
                .map_err(error::general)?
        }
        (None, Some(path)) => {
            let args = OpenArgs {
                runtime,
                profile,
                threads,
                ort_library,
            };
            let mut session: Session = crate::session::open(py, path, &args)?;
            py.detach(|| evaluate_session(&mut session, &data, &opts, |_, _| {}))
                .map_err(error::general)?
        }
        (None, None) => {
            return Err(error::input(
                "give model= (an ONNX file) or checkpoint= (run in burn)",
            ))
        }
    };
    Ok((report.markdown(), report.to_json().to_string()))
}

/// `vmunet info` for one file: its input, output and metadata, as JSON text.
#[pyfunction]
pub fn model_info(path: PathBuf) -> PyResult<String> {
    let file = vmunet_runtime::ModelFile::read(&path).map_err(error::runtime)?;
    Ok(file.metadata_json().to_string())
}
