//! The file-to-file compression steps every front end runs (`vmunet compress fp16|int8`, the
//! Python package's `compress.fp16` / `compress.int8`): read the float32 export and its
//! calibration images, rewrite, write durably, report. Front ends only print.

use std::path::{Path, PathBuf};

use vmunet_runtime::DeviceProfile;
use vmunet_target::Host;

use crate::{
    int8_for_target, quantize, size_line, to_fp16, CalibrationSet, CompressError, CompressInput,
    Fp16Options, Int8Request,
};

/// The model a step compresses and the images it calibrates on.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressSource {
    /// The float32 ONNX export.
    pub model: PathBuf,
    /// Input size (H = W) to calibrate a size-dynamic export at (default: the export's, else
    /// 256).
    pub size: Option<usize>,
    /// Calibration images: a folder (or a dataset root with `images/` or `train/images/`),
    /// preprocessed as at inference.
    pub calib: Option<PathBuf>,
    /// How many calibration images (spread evenly over the folder).
    pub calib_count: usize,
}

impl CompressSource {
    /// The model `model`, calibrated on nothing yet (32 images when a folder is set).
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            size: None,
            calib: None,
            calib_count: 32,
        }
    }

    /// Reads the model and, when a folder is set, its calibration images.
    pub fn read(&self) -> Result<(CompressInput, Option<CalibrationSet>), CompressError> {
        let input = CompressInput::read(&self.model, self.size)?;
        let calib = match &self.calib {
            Some(dir) => Some(CalibrationSet::from_dir(
                dir,
                self.calib_count,
                &input.preprocess,
            )?),
            None => None,
        };
        Ok((input, calib))
    }
}

/// What a step wrote, in words and as JSON (the report `vmunet compress ... --json` prints).
#[derive(Debug, Clone, PartialEq)]
pub struct CompressOutcome {
    /// The file written.
    pub output: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The report as the command line prints it (summary and size line).
    pub text: String,
    /// The report as JSON.
    pub json: serde_json::Value,
}

/// Writes `model` durably to `path`; returns its size.
/// Writes `model` (compressed from `input`) durably to `output` and reports it: `summary`, the
/// size line, and `json(bytes)`.
fn write(
    model: &vmunet_onnx_ir::Model,
    input: &CompressInput,
    output: &Path,
    summary: String,
    json: impl FnOnce(u64) -> serde_json::Value,
) -> Result<CompressOutcome, CompressError> {
    model.write(output)?;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    Ok(CompressOutcome {
        output: output.to_path_buf(),
        bytes,
        text: format!("{summary}{}\n", size_line(&input.path, output, bytes)),
        json: json(bytes),
    })
}

/// float16 weights and activations under the VM-UNet policy (`opts`), the range check on the
/// source's calibration images (else four synthetic ones), written to `output`.
pub fn fp16_file(
    source: &CompressSource,
    opts: &Fp16Options,
    output: &Path,
) -> Result<CompressOutcome, CompressError> {
    let (input, calib) = source.read()?;
    let calib = calib.unwrap_or_else(|| CalibrationSet::synthetic(4, &input.preprocess));
    let (out, report) = to_fp16(&input.model, opts, &calib)?;
    write(&out, &input, output, report.summary(), |bytes| {
        report.to_json(&input.path, output, bytes)
    })
}

/// How [`int8_file`] quantises: the request, nodes kept float, weights only, the device.
#[derive(Debug, Clone, Default)]
pub struct Int8Job {
    /// Form, calibration method, activation type and the rest.
    pub request: Int8Request,
    /// Nodes kept float (names or glob patterns).
    pub exclude: Vec<String>,
    /// No calibration: int8 weights only (qdq) or activations quantised at run time
    /// (qoperator).
    pub dynamic: bool,
    /// The device the model is for: picks the form and checks the scan form.
    pub profile: Option<DeviceProfile>,
}

/// int8 post-training quantisation of the source's model as `job` says, written to `output`.
/// Static quantisation needs the source's calibration folder.
pub fn int8_file(
    source: &CompressSource,
    job: &Int8Job,
    output: &Path,
) -> Result<CompressOutcome, CompressError> {
    let (input, calib) = source.read()?;
    if let Some(p) = &job.profile {
        crate::check_for_profile(&input.path, &input.model.metadata()?, p)?;
    }
    let opts = int8_for_target(
        &job.request,
        job.exclude.clone(),
        job.dynamic,
        job.profile.as_ref(),
        Host::this_machine(),
    )?;
    let (out, report) = quantize(&input.model, &opts, calib.as_ref())?;
    write(&out, &input, output, report.summary(&opts), |bytes| {
        report.to_json(&opts, &input.path, output, bytes)
    })
}
