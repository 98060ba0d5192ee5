//! The graph rewrite: walks the float32 graph once, hands each chosen node to the QDQ or
//! QOperator rewriter (the weight-only nodes to QDQ in dynamic mode), drops the initializers
//! no longer read and stores the remaining large float constants as float16.

use std::collections::{HashMap, HashSet};

use vmunet_onnx_ir::Model;

use super::constants::{ensure_opset, fp16_constants};
use super::options::{Format, Int8Options};
use super::rewrite::Rewriter;
use crate::calib::Stats;
use crate::CompressError;

/// Rewrites `nodes` of the float32 `model` with the calibrated `stats` (unused in dynamic
/// mode); initializers no longer read are dropped.
pub fn apply(
    model: &Model,
    nodes: &[String],
    weight_only: &[String],
    stats: Option<&Stats>,
    opts: &Int8Options,
) -> Result<Model, CompressError> {
    let mut out = model.clone();
    let chosen: HashSet<&str> = nodes.iter().map(String::as_str).collect();
    let weights_only: HashSet<&str> = weight_only.iter().map(String::as_str).collect();
    let wo_opts = Int8Options {
        dynamic: true,
        format: Format::Qdq,
        ..opts.clone()
    };
    let old = out.graph.nodes().to_vec();
    let mut rw = Rewriter {
        opts,
        stats,
        nodes: Vec::with_capacity(old.len() * 2),
        quantized: HashMap::new(),
        dequantized: HashMap::new(),
    };
    for n in old {
        if weights_only.contains(n.name()) {
            let saved = rw.opts;
            rw.opts = &wo_opts;
            let r = rw.qdq(&mut out.graph, n);
            rw.opts = saved;
            r?;
            continue;
        }
        if !chosen.contains(n.name()) {
            rw.nodes.push(n);
            continue;
        }
        match opts.format {
            Format::Qdq => rw.qdq(&mut out.graph, n)?,
            Format::QOperator => rw.qoperator(&mut out.graph, n)?,
        }
    }
    let nodes = std::mem::take(&mut rw.nodes);
    let p = out.graph.proto_mut();
    p.node = nodes;
    p.value_info.clear();
    let read: HashSet<String> = p
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(p.output.iter().map(|o| o.name().to_string()))
        .collect();
    let dropped: HashSet<String> = p
        .initializer
        .iter()
        .filter(|t| !read.contains(t.name()))
        .map(|t| t.name().to_string())
        .collect();
    p.initializer.retain(|t| !dropped.contains(t.name()));
    // Inputs listed for initializers that are gone (IR < 4 style) go too.
    p.input.retain(|i| !dropped.contains(i.name()));
    if opts.fp16_constants {
        fp16_constants(&mut out)?;
    }
    out.graph.check()?;
    ensure_opset(&mut out, 13);
    Ok(out)
}
