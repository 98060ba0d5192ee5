//! The models of the report: the float32 export, fp16, int8 in both forms, and the pruned
//! checkpoint's export and int8 forms.

use std::path::{Path, PathBuf};

use vmunet_model::ModelSource;
use vmunet_onnx::{export_to_file, ExportRequest, ScanForm};
use vmunet_onnx_ir::Model;
use vmunet_runtime::RuntimeKind;
use vmunet_target::{Host, Int8Defaults, Int8Format, ProviderName};

use super::job::ReportJob;
use crate::{quantize, to_fp16, CalibrationSet, CompressError, Fp16Options, Int8Options};

/// A model to measure.
pub(crate) struct Variant {
    pub name: &'static str,
    pub path: PathBuf,
    pub parameters: usize,
    /// The runtime the metrics are computed in.
    pub runtime: RuntimeKind,
}

/// The int8 forms: (name, name of the pruned one, the runtime whose settings it takes).
const INT8_FORMS: [(&str, &str, RuntimeKind); 2] = [
    ("int8-qdq", "pruned-int8-qdq", RuntimeKind::Ort),
    (
        "int8-qoperator",
        "pruned-int8-qoperator",
        RuntimeKind::Tract,
    ),
];

/// What the variants are made with.
pub(super) struct Variants<'a> {
    pub job: &'a ReportJob,
    pub calib: &'a CalibrationSet,
    pub host: Host,
    /// ONNX Runtime is available (the metrics of QDQ and float models run there).
    pub ort: bool,
}

impl Variants<'_> {
    /// The runtime a model of `format` (None: float) is scored in.
    fn metrics_runtime(&self, format: Option<Int8Format>) -> RuntimeKind {
        match format {
            Some(Int8Format::QOperator) => RuntimeKind::Tract,
            _ if self.ort => RuntimeKind::Ort,
            _ => RuntimeKind::Tract,
        }
    }

    /// `m` in int8 as `runtime`'s ONNX Runtime / tract CPU settings need it.
    fn int8(&self, m: &Model, runtime: RuntimeKind) -> Result<(Model, Int8Format), CompressError> {
        let d = Int8Defaults::for_runtime(runtime, &[ProviderName::Cpu], self.host);
        let opts = Int8Options {
            format: d.format,
            method: self.job.method,
            activation_type: d.activations,
            reduce_range: d.reduce_range,
            ..Default::default()
        };
        quantize(m, &opts, Some(self.calib)).map(|(q, _)| (q, d.format))
    }

    /// Writes `m`'s int8 forms into the output folder under `names` (plain or pruned).
    fn int8_forms(
        &self,
        m: &Model,
        parameters: usize,
        pruned: bool,
        out: &mut Vec<Variant>,
    ) -> Result<(), CompressError> {
        for (plain, pruned_name, rt) in INT8_FORMS {
            let name = if pruned { pruned_name } else { plain };
            let (q, format) = self.int8(m, rt)?;
            out.push(Variant {
                name,
                path: write(&q, &self.job.out.join(format!("{name}.onnx")))?,
                parameters,
                runtime: self.metrics_runtime(Some(format)),
            });
        }
        Ok(())
    }

    /// Every variant, the float32 export (`fp32`, `params` parameters) first.
    pub fn build(&self, fp32: &Path, params: usize) -> Result<Vec<Variant>, CompressError> {
        let base = read(fp32)?;
        let mut variants = vec![Variant {
            name: "fp32",
            path: fp32.to_path_buf(),
            parameters: params,
            runtime: self.metrics_runtime(None),
        }];
        let (half, _) = to_fp16(&base, &Fp16Options::default(), self.calib)?;
        variants.push(Variant {
            name: "fp16",
            path: write(&half, &self.job.out.join("fp16.onnx"))?,
            parameters: params,
            runtime: self.metrics_runtime(None),
        });
        self.int8_forms(&base, params, false, &mut variants)?;
        if let Some(pruned) = &self.job.pruned {
            let pp = self.job.out.join("pruned.onnx");
            let (pparams, _) = export(pruned, &pp, self.job.scan)?;
            let pbase = read(&pp)?;
            variants.push(Variant {
                name: "pruned",
                path: pp,
                parameters: pparams,
                runtime: self.metrics_runtime(None),
            });
            self.int8_forms(&pbase, pparams, true, &mut variants)?;
        }
        Ok(variants)
    }
}

/// Exports checkpoint `ck` in the `scan` form at the size it was trained at; returns its
/// parameters and training size.
pub(super) fn export(
    ck: &Path,
    out: &Path,
    scan: ScanForm,
) -> Result<(usize, Option<usize>), CompressError> {
    use burn::module::Module;
    let loaded = ModelSource::Checkpoint(ck.to_path_buf()).load()?;
    let request = ExportRequest {
        size: Some(loaded.input_size().unwrap_or(256)),
        scan: Some(scan),
        ..Default::default()
    };
    export_to_file(&loaded, &request, None, out)?;
    Ok((loaded.model.num_params(), loaded.input_size()))
}

pub(super) fn read(path: &Path) -> Result<Model, CompressError> {
    Ok(Model::read(path)?)
}

pub(super) fn write(model: &Model, path: &Path) -> Result<PathBuf, CompressError> {
    model.write(path)?;
    Ok(path.to_path_buf())
}
