//! Which nodes cost accuracy when quantised: each candidate alone, on the calibration images.

use serde::Serialize;
use vmunet_onnx_ir::Model;
use vmunet_runtime::Probe;

use crate::calib::{CalibrationSet, Stats};
use crate::int8::{apply, calibrated_values, plan, Int8Options};
use crate::CompressError;

/// The error quantising one node alone adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSensitivity {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Mean |logit difference| against float32 over the calibration images.
    pub mean_abs_error: f64,
    /// Largest |logit difference|.
    pub max_abs_error: f64,
    /// Fraction of pixels whose foreground decision (logit > 0) flips.
    pub mask_flips: f64,
    /// Why the default options keep it float (`None`: quantised by default).
    pub default_excluded: Option<String>,
}

/// Quantises each Conv/MatMul candidate alone (in `opts`' form and calibration method) and
/// measures its output error on `calib`; most sensitive first.
pub fn sensitivity(
    model: &Model,
    opts: &Int8Options,
    calib: &CalibrationSet,
) -> Result<Vec<NodeSensitivity>, CompressError> {
    crate::check_float32(model)?;
    let everything = Int8Options {
        quantize_scan_projections: true,
        quantize_output_layer: true,
        exclude: Vec::new(),
        dynamic: false,
        only: None,
        ..opts.clone()
    };
    let candidates = plan(&model.graph, &everything)?.quantize;
    let default_kept = plan(&model.graph, opts)?.keep;
    let values = calibrated_values(&model.graph, &candidates);
    let stats = Stats::collect(model, &values, calib, opts.method.needs_histograms())?;
    let shape = calib.shape();
    let reference = Probe::new(model, &[], &shape, "the float32 model")?;
    let base: Vec<Vec<f32>> = calib
        .inputs
        .iter()
        .map(|x| reference.run(x).map(|o| o[0].data.clone()))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::with_capacity(candidates.len());
    for name in &candidates {
        let q = apply(
            model,
            std::slice::from_ref(name),
            &[],
            Some(&stats),
            &Int8Options {
                fp16_constants: false,
                ..everything.clone()
            },
        )?;
        let probe = Probe::new(&q, &[], &shape, name)?;
        let (mut sum, mut max, mut flips, mut count) = (0f64, 0f64, 0usize, 0usize);
        for (x, b) in calib.inputs.iter().zip(&base) {
            let y = &probe.run(x)?[0].data;
            for (a, r) in y.iter().zip(b) {
                let d = (a - r).abs() as f64;
                sum += d;
                max = max.max(d);
                flips += usize::from((*a > 0.0) != (*r > 0.0));
                count += 1;
            }
        }
        let op = model
            .graph
            .find_node(name)
            .map(|n| n.op_type().to_string())
            .unwrap_or_default();
        rows.push(NodeSensitivity {
            node: name.clone(),
            op,
            mean_abs_error: sum / count.max(1) as f64,
            max_abs_error: max,
            mask_flips: flips as f64 / count.max(1) as f64,
            default_excluded: default_kept
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, w)| w.clone()),
        });
    }
    rows.sort_by(|a, b| b.mean_abs_error.total_cmp(&a.mean_abs_error));
    Ok(rows)
}
