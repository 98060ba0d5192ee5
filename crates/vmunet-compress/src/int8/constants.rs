//! The float constants around the quantised nodes: large float32 initializers stored as
//! float16 behind a `Cast`, and the opset the quantised ops need.

use std::collections::HashSet;

use vmunet_onnx_ir::{Attr, Model};

use super::rewrite::node;
use crate::CompressError;

/// Float32 initializers of at least this many elements are stored as float16 by
/// [`Int8Options::fp16_constants`](super::Int8Options::fp16_constants).
const FP16_CONSTANT_MIN: usize = 256;

/// Stores the remaining large float32 initializers as float16 with a `Cast` back to float32
/// (the computation stays float32; runtimes fold the cast at load). Values beyond float16's
/// range stay float32. Returns how many were converted.
pub(super) fn fp16_constants(model: &mut Model) -> Result<usize, CompressError> {
    let g = &mut model.graph;
    let names: Vec<String> = g
        .initializers()
        .iter()
        .filter(|t| t.data_type() == vmunet_onnx_ir::DataType::Float as i32)
        .filter(|t| t.dims.iter().product::<i64>() as usize >= FP16_CONSTANT_MIN)
        .map(|t| t.name().to_string())
        .collect();
    let mut count = 0;
    let mut casts = Vec::new();
    for name in names {
        let (dims, data) = g.initializer::<f32>(&name)?;
        if data.iter().any(|v| v.abs() > 65504.0) {
            continue;
        }
        let h: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        let stored = g.fresh(&format!("{name}/fp16"));
        g.add_initializer(&stored, &dims, &h)?;
        let cast = g.fresh(&format!("{name}/Cast"));
        casts.push(node(
            cast,
            "Cast",
            vec![stored],
            vec![name.clone()],
            vec![("to", Attr::Int(vmunet_onnx_ir::DataType::Float as i64))],
        ));
        count += 1;
    }
    let p = g.proto_mut();
    let converted: HashSet<String> = casts.iter().map(|c| c.output[0].clone()).collect();
    p.initializer.retain(|t| !converted.contains(t.name()));
    p.input.retain(|i| !converted.contains(i.name()));
    let rest = std::mem::take(&mut p.node);
    p.node = casts;
    p.node.extend(rest);
    Ok(count)
}

/// Raises the default-domain opset of `model` to at least `min`.
pub(super) fn ensure_opset(model: &mut Model, min: i64) {
    for o in &mut model.header.opset_import {
        if o.domain().is_empty() && o.version() < min {
            o.version = Some(min);
        }
    }
}
