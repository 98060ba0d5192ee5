//! Compression of exported VM-UNet models, as graph rewrites on the ONNX contract
//! ([`vmunet_onnx_ir`]):
//!
//! - [`fp16`]: float16 weights and activations under a precision policy that knows VM-UNet
//!   (the selective scan, softplus, exponentials and LayerNorm stay float32, with `Cast` at
//!   the borders; any node whose calibrated range does not fit float16 stays float32 too);
//! - [`int8`]: post-training quantisation, weights symmetric per output channel, activations
//!   per tensor calibrated on real images ([`calib`]: min-max, percentile, entropy), in QDQ form
//!   (ONNX Runtime, TensorRT) or QOperator form (tract's integer kernels), or weights only;
//! - [`mod@sensitivity`]: which nodes cost accuracy when quantised, one at a time;
//! - `prune` (feature `prune`): structured pruning of SS2D channels and states in a
//!   checkpoint, and `prune_checkpoint`: pruning, its provenance record and optional
//!   fine-tuning in one call;
//! - `report` (feature `report`): every compressed form of a checkpoint measured side by side;
//! - for a device: [`check_for_profile`] and [`int8_for_target`] apply the device target's
//!   check and int8 settings; [`CompressInput`] reads the model and the preprocessing its
//!   calibration needs;
//! - [`fp16_file`] and [`int8_file`]: a whole step, file to file, as every front end runs it.
//!
//! Every step records itself in the model's metadata ([`vmunet_onnx_ir::CompressionStep`]).

#![deny(missing_docs)]

pub mod calib;
pub mod fp16;
mod input;
pub mod int8;
mod job;
mod policy;
#[cfg(feature = "prune")]
pub mod prune;
#[cfg(feature = "prune")]
mod prune_job;
#[cfg(feature = "report")]
mod report;
mod request;
pub mod select;
pub mod sensitivity;
mod target;
mod text;
mod types;

use std::path::PathBuf;

pub use calib::{CalibrationSet, Method, Stats, ValueStats};
pub use fp16::{to_fp16, Fp16Options, Fp16Report, KeepReason};
pub use input::CompressInput;
pub use int8::{quantize, ActivationType, Format, Int8Options, Int8Report};
pub use job::{fp16_file, int8_file, CompressOutcome, CompressSource, Int8Job};
pub use policy::{scan_region, ScanRegion};
#[cfg(feature = "prune")]
pub use prune_job::{prune_checkpoint, FineTune, PruneJob, PruneOutcome};
#[cfg(feature = "report")]
pub use report::{compression_report, CompressionReport, Latency, ReportJob, ReportRow};
pub use request::Int8Request;
pub use select::Selection;
pub use sensitivity::{sensitivity, NodeSensitivity};
pub use target::{check_for_profile, int8_for_target};
pub use text::{sensitivity_table, size_line};

use vmunet_onnx_ir::{CompressionStep, Model, ModelMetadata, Precision};

/// Compression errors; each names the file, node or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A `--exclude` / `--keep-fp32` name or pattern matches no node.
    #[error("`{pattern}` matches no node of the model (node names look like `{example}`; `*` and `?` are wildcards)")]
    UnknownPattern {
        /// The pattern.
        pattern: String,
        /// A node name of the model, as an example.
        example: String,
    },
    /// The model is already compressed the way asked (or in a way that forbids the step).
    #[error("the model is already {0}; compress the float32 export instead")]
    AlreadyCompressed(String),
    /// The calibration folder is unusable.
    #[error("calibration images in {path}: {reason}")]
    Calibration {
        /// The folder (or file).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An option is out of range or contradicts another.
    #[error("{0}")]
    Options(String),
    /// The model cannot be compressed as asked.
    #[error("{0}")]
    Unsupported(String),
    /// A graph lookup or edit failed.
    #[error(transparent)]
    Graph(#[from] vmunet_onnx_ir::GraphError),
    /// The model's metadata is malformed.
    #[error(transparent)]
    Metadata(#[from] vmunet_onnx_ir::MetadataError),
    /// Running the model (calibration, sensitivity) failed.
    #[error(transparent)]
    Runtime(#[from] vmunet_runtime::RuntimeError),
    /// An ONNX file cannot be read or written.
    #[error(transparent)]
    Onnx(#[from] vmunet_onnx_ir::OnnxFileError),
    /// A file cannot be read or written.
    #[error(transparent)]
    Fs(#[from] vmunet_fs::FsError),
    /// A checkpoint cannot be read or written.
    #[cfg(feature = "prune")]
    #[error(transparent)]
    Checkpoint(#[from] vmunet_model::checkpoint::CheckpointError),
    /// Fine-tuning or evaluating failed.
    #[cfg(feature = "prune")]
    #[error(transparent)]
    Train(#[from] vmunet_train::TrainError),
    /// A checkpoint or preset cannot be loaded.
    #[cfg(feature = "report")]
    #[error(transparent)]
    Source(#[from] vmunet_model::SourceError),
    /// Exporting a checkpoint failed.
    #[cfg(feature = "report")]
    #[error(transparent)]
    Export(#[from] vmunet_onnx::ExportError),
    /// The report's chart cannot be drawn or written.
    #[cfg(feature = "report")]
    #[error(transparent)]
    Plot(#[from] vmunet_plot::PlotError),
}

/// The ops that mark a model as quantised already.
const QUANT_OPS: [&str; 8] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "QGemm",
];

/// Refuses a model that is already quantised or float16 (compression starts from the
/// float32 export).
pub fn check_float32(model: &Model) -> Result<(), CompressError> {
    if let Some(n) = model
        .graph
        .nodes()
        .iter()
        .find(|n| QUANT_OPS.contains(&n.op_type()))
    {
        return Err(CompressError::AlreadyCompressed(format!(
            "quantised (node `{}` is a {})",
            n.name(),
            n.op_type()
        )));
    }
    let meta = model.metadata()?;
    match meta.precision {
        Some(p @ (Precision::Fp16 | Precision::Int8 | Precision::Mixed)) => Err(
            CompressError::AlreadyCompressed(format!("{p} (metadata `precision`)")),
        ),
        _ => {
            let half = model.graph.initializers().iter().any(|t| {
                t.data_type() == vmunet_onnx_ir::pb::tensor_proto::DataType::Float16 as i32
            });
            if half {
                Err(CompressError::AlreadyCompressed(
                    "float16 (it holds float16 weights)".into(),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Appends `step` (with the tool's name and version) to the model's metadata history and sets
/// its precision.
pub fn record_step(
    model: &mut Model,
    precision: Precision,
    kind: &str,
    params: serde_json::Map<String, serde_json::Value>,
) -> Result<(), CompressError> {
    let mut meta: ModelMetadata = model.metadata()?;
    meta.precision = Some(precision);
    meta.compression.push(CompressionStep {
        kind: kind.to_string(),
        params,
        tool: Some(format!("vmunet-compress {}", env!("CARGO_PKG_VERSION"))),
    });
    model.set_metadata(&meta);
    Ok(())
}
