//! float16 conversion with a precision policy that knows VM-UNet.
//!
//! Every node with float tensors runs in float16 except:
//! - the scan region ([`crate::scan_region`]): the selective scan's recurrence, its
//!   exponentials and softplus, and the merge of its four directions;
//! - `LayerNormalization` (its mean and variance), unless asked otherwise;
//! - nodes matched by `--keep-fp32` patterns;
//! - nodes whose output's calibrated range does not fit float16 (|x| above
//!   [`SAFE_MAX`], or every value below float16's smallest normal number), or that read a
//!   weight outside float16's range.
//!
//! `Cast` nodes sit at every border between the two precisions; initializers read by float16
//! nodes are stored in float16 (a float32 copy stays where float32 nodes read them too).
//!
//! [`to_fp16`] runs the steps in order, one file each: `keep` (which nodes stay float32 and
//! why), `initializers` (float16 weights), `casts` (the borders between the precisions),
//! `io` (the graph's inputs and outputs) and `record` (the metadata step).

mod casts;
mod floats;
mod initializers;
mod io;
mod keep;
mod options;
mod record;

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{Model, Precision};

use crate::calib::CalibrationSet;
use crate::CompressError;
use floats::Floats;

pub use options::{Fp16Options, Fp16Report, KeepReason, SAFE_MAX};

/// Converts the float32 `model` to float16 under the policy; `calib` runs through the float32
/// model first to find values float16 cannot hold.
pub fn to_fp16(
    model: &Model,
    opts: &Fp16Options,
    calib: &CalibrationSet,
) -> Result<(Model, Fp16Report), CompressError> {
    crate::check_float32(model)?;
    let floats = Floats::new(&model.graph);
    let keep = keep::decide(model, &floats, opts, calib)?;
    let half = |n: &NodeProto| keep::runs_half(&floats, &keep, n);

    let mut out = model.clone();
    let mut report = Fp16Report {
        calibration: format!("{} ({} images)", calib.source, calib.len()),
        ..Default::default()
    };
    let half_init_name =
        initializers::convert(&model.graph, &mut out.graph, &floats, half, &mut report)?;
    let (input_names, mut current) = io::input_types(&out.graph, &floats, opts);
    let mut nodes = casts::insert_casts(
        &mut out.graph,
        &floats,
        half,
        &half_init_name,
        &mut current,
        &mut report,
    )?;
    let output_types = io::output_casts(
        &mut out.graph,
        &floats,
        opts,
        &mut nodes,
        &current,
        &mut report,
    );
    io::set_types(
        &mut out.graph,
        nodes,
        &floats,
        &input_names,
        &current,
        &output_types,
    );
    out.graph.check()?;

    report.kept = record::kept_in_order(&model.graph, &keep);
    let params = record::step_params(model, opts, &report);
    crate::record_step(&mut out, Precision::Fp16, "fp16", params)?;
    Ok((out, report))
}
