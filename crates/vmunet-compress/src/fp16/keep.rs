//! Which nodes stay float32 and why: the policy (scan region, LayerNorm, `--keep-fp32`,
//! loop bodies, weights beyond float16's range), then the range check on calibration images.

use std::collections::BTreeMap;

use half::f16;
use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Graph, Model};

use super::floats::Floats;
use super::options::{Fp16Options, KeepReason, SAFE_MAX};
use crate::calib::{CalibrationSet, Stats};
use crate::policy::scan_region;
use crate::select::Selection;
use crate::CompressError;

/// The nodes kept float32, by name, with the reason.
pub(super) type Keep = BTreeMap<String, KeepReason>;

/// The nodes of `model` that stay float32: the policy's, then those whose calibrated range
/// on `calib` does not fit float16.
pub(super) fn decide(
    model: &Model,
    floats: &Floats,
    opts: &Fp16Options,
    calib: &CalibrationSet,
) -> Result<Keep, CompressError> {
    let mut keep = by_policy(&model.graph, floats, opts)?;
    by_range(model, floats, calib, &mut keep)?;
    Ok(keep)
}

/// Whether `n` runs in float16: it carries float tensors, is not kept and is no `Cast`.
pub(super) fn runs_half(floats: &Floats, keep: &Keep, n: &NodeProto) -> bool {
    floats.floaty(n) && !keep.contains_key(n.name()) && n.op_type() != "Cast"
}

/// The policy: the scan region, LayerNorm, the `--keep-fp32` patterns, loop bodies, and the
/// nodes reading a weight beyond float16's range.
fn by_policy(graph: &Graph, floats: &Floats, opts: &Fp16Options) -> Result<Keep, CompressError> {
    let asked = Selection::resolve(graph, &opts.keep_fp32)?;
    let region = scan_region(graph);
    let mut keep = Keep::new();
    for n in graph.nodes().iter().filter(|n| floats.floaty(n)) {
        let reason = if opts.keep_scan_fp32 && region.contains(n.name()) {
            Some(KeepReason::Scan)
        } else if opts.keep_layernorm_fp32 && n.op_type() == "LayerNormalization" {
            Some(KeepReason::LayerNorm)
        } else if asked.contains(n.name()) {
            Some(KeepReason::Asked)
        } else if n.op_type() == "Scan" {
            // A loop body is never converted: its state is the scan's.
            Some(KeepReason::Scan)
        } else {
            n.input
                .iter()
                .filter(|i| floats.is_f32_init(i))
                .find(|i| {
                    graph
                        .initializer::<f32>(i)
                        .map(|(_, d)| d.iter().any(|v| v.abs() > f16::MAX.to_f32()))
                        .unwrap_or(false)
                })
                .map(|i| KeepReason::Weight { name: i.clone() })
        };
        if let Some(r) = reason {
            keep.insert(n.name().to_string(), r);
        }
    }
    Ok(keep)
}

/// The range check: every float output of a node that would run in float16, through the
/// float32 model on `calib`; a node whose output overflows or underflows float16 is kept.
fn by_range(
    model: &Model,
    floats: &Floats,
    calib: &CalibrationSet,
    keep: &mut Keep,
) -> Result<(), CompressError> {
    let graph = &model.graph;
    let probed: Vec<String> = graph
        .nodes()
        .iter()
        .filter(|n| floats.floaty(n) && !keep.contains_key(n.name()))
        .flat_map(|n| n.output.iter().filter(|o| floats.is_f32(o)).cloned())
        .collect();
    let stats = Stats::collect(model, &probed, calib, false)?;
    for n in graph.nodes() {
        if keep.contains_key(n.name()) || !floats.floaty(n) {
            continue;
        }
        for o in &n.output {
            if let Some(s) = stats.get(o) {
                let a = s.abs_max();
                if s.nonfinite > 0 || a > SAFE_MAX {
                    keep.insert(n.name().to_string(), KeepReason::Overflow { abs_max: a });
                } else if a > 0.0 && a < f16::MIN_POSITIVE.to_f32() {
                    keep.insert(n.name().to_string(), KeepReason::Underflow { abs_max: a });
                }
            }
        }
    }
    Ok(())
}
