//! int8 post-training quantisation of `Conv` and `MatMul` nodes with constant weights.
//!
//! - Weights: symmetric, per output channel (Conv: axis 0; MatMul `[K, N]`: per column),
//!   int8 in [-127, 127] ([-63, 63] with `reduce_range`).
//! - Activations (the node's input and output): per tensor, from calibrated ranges
//!   ([`crate::calib`]); int8 or uint8, asymmetric or symmetric (zero point 0 for int8:
//!   TensorRT's requirement).
//! - Biases (Conv): int32 at scale `x_scale * w_scale[c]`.
//!
//! Two forms: **QDQ** (`QuantizeLinear`/`DequantizeLinear` around float ops, which ONNX Runtime
//! and TensorRT fuse into integer kernels) and **QOperator** (`QLinearConv`, `QLinearMatMul`,
//! with `DequantizeLinear` back to float for the ops around them: tract's integer kernels).
//! The dynamic mode needs no calibration: int8 weights only (QDQ), or `DynamicQuantizeLinear`
//! + `MatMulInteger` (QOperator).
//!
//! By default the scan region, the projections that compute the scan's parameters (`x_proj`,
//! `dt_proj`) and the layer that produces the model's output stay float.
//!
//! One file per job: `options` ([`Int8Options`], [`Format`], [`ActivationType`]), `plan`
//! (which nodes, [`plan()`]), `params` (scales and zero points), `rewrite` (the state the two
//! rewriters share), `qdq` and `qoperator` (the two forms), `constants` (the float constants
//! left around them) and `apply` (the walk over the graph, [`apply()`]).

mod apply;
mod constants;
mod options;
mod params;
mod plan;
mod qdq;
mod qoperator;
mod rewrite;

use serde_json::json;
use vmunet_onnx_ir::{Model, Precision};

use crate::calib::{CalibrationSet, Stats};
use crate::CompressError;

pub use apply::apply;
pub use options::{ActivationType, Format, Int8Options};
pub use params::{activation_params, quantize_weights, QParams};
pub use plan::{calibrated_values, plan, Plan, WEIGHT_ONLY};

/// What [`quantize`] did.
#[derive(Debug, Clone, Default)]
pub struct Int8Report {
    /// Quantised nodes, in graph order.
    pub quantized: Vec<String>,
    /// Nodes whose weights only are int8 (they compute in float).
    pub weight_only: Vec<String>,
    /// Float constants stored as float16.
    pub fp16_constants: usize,
    /// Candidates (Conv/MatMul with constant weights) kept float, with the reason.
    pub excluded: Vec<(String, String)>,
    /// Calibration source and image count (empty in dynamic mode).
    pub calibration: String,
}

/// Quantises the float32 `model`: plans the nodes, calibrates their activations on `calib`
/// (not needed in dynamic mode) and rewrites the graph; records the step in the metadata.
pub fn quantize(
    model: &Model,
    opts: &Int8Options,
    calib: Option<&CalibrationSet>,
) -> Result<(Model, Int8Report), CompressError> {
    crate::check_float32(model)?;
    let Plan {
        quantize: take,
        keep,
    } = plan(&model.graph, opts)?;
    let weight_only: Vec<String> = keep
        .iter()
        .filter(|(_, w)| w == WEIGHT_ONLY)
        .map(|(n, _)| n.clone())
        .collect();
    if take.is_empty() {
        return Err(CompressError::Unsupported(
            "no Conv or MatMul node is left to quantise (all are excluded)".into(),
        ));
    }
    let (stats, calibration) = calibrate(model, &take, opts, calib)?;
    let mut out = apply(model, &take, &weight_only, stats.as_ref(), opts)?;
    let report = Int8Report {
        fp16_constants: fp16_constant_count(&out),
        quantized: take,
        weight_only,
        excluded: keep,
        calibration,
    };
    let params = step_params(model, opts, &report);
    crate::record_step(&mut out, Precision::Int8, "int8", params)?;
    Ok((out, report))
}

/// The calibrated ranges of the values around the nodes `take`, and a line naming the
/// images (`None` and empty in dynamic mode).
fn calibrate(
    model: &Model,
    take: &[String],
    opts: &Int8Options,
    calib: Option<&CalibrationSet>,
) -> Result<(Option<Stats>, String), CompressError> {
    if opts.dynamic {
        return Ok((None, String::new()));
    }
    let set = calib.ok_or_else(|| {
        CompressError::Options(
            "static quantisation needs calibration images (--calib DIR), or --dynamic".into(),
        )
    })?;
    let values = calibrated_values(&model.graph, take);
    let stats = Stats::collect(model, &values, set, opts.method.needs_histograms())?;
    Ok((
        Some(stats),
        format!("{} ({} images)", set.source, set.len()),
    ))
}

/// The float constants of the quantised `model` stored as float16 (each widened by a `Cast`).
fn fp16_constant_count(model: &Model) -> usize {
    model
        .graph
        .nodes()
        .iter()
        .filter(|n| {
            n.op_type() == "Cast"
                && model
                    .graph
                    .initializer_proto(&n.input[0])
                    .is_some_and(|t| t.data_type() == vmunet_onnx_ir::DataType::Float16 as i32)
        })
        .count()
}

/// The parameters of the `int8` step recorded in the model's metadata.
fn step_params(
    source: &Model,
    opts: &Int8Options,
    report: &Int8Report,
) -> serde_json::Map<String, serde_json::Value> {
    let mut params = serde_json::Map::new();
    params.insert(
        "source_sha256".into(),
        json!(vmunet_fs::sha256_hex(&source.to_bytes())),
    );
    params.insert("format".into(), json!(opts.format.name()));
    params.insert(
        "mode".into(),
        json!(if opts.dynamic { "dynamic" } else { "static" }),
    );
    if !opts.dynamic {
        params.insert("method".into(), json!(opts.method.to_string()));
        params.insert("calibration".into(), json!(report.calibration));
        params.insert(
            "activations".into(),
            json!(format!(
                "{} per tensor, {}",
                opts.activation_type.name(),
                if opts.symmetric_activations {
                    "symmetric"
                } else {
                    "asymmetric"
                }
            )),
        );
    }
    params.insert(
        "weights".into(),
        json!(if opts.reduce_range {
            "s8 per channel, symmetric, 7-bit (reduce_range)"
        } else {
            "s8 per channel, symmetric"
        }),
    );
    params.insert("exclude".into(), json!(opts.exclude));
    params.insert("quantized_nodes".into(), json!(report.quantized.len()));
    params.insert("weight_only_nodes".into(), json!(report.weight_only.len()));
    params.insert("fp16_constants".into(), json!(report.fp16_constants));
    params.insert(
        "kept_float".into(),
        json!(report
            .excluded
            .iter()
            .map(|(n, w)| json!({"node": n, "reason": w}))
            .collect::<Vec<_>>()),
    );
    params
}
