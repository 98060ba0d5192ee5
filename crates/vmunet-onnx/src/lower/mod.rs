//! Lowering of each VM-UNet module to standard ONNX operators, walking the burn module tree.
//! Each function mirrors the module's `forward` in `vmunet-model`. One file per module family
//! and one per scan formulation:
//!
//! - `ops`: generic graph helpers (reshape, transpose, linear, layer norm, conv, shapes, ...);
//! - `patch`: patch embedding, merging and expanding; `vss`: the VSS block;
//! - `ss2d`: SS2D, with its weights in the scan layouts (`weights`) and the four directions'
//!   sequence orders (`directions`);
//! - the selective scan: `scan_loop` (an ONNX `Scan`), `chunked` (log depth, no control flow),
//!   `custom` (the `ai.vmunet::SelectiveScan` node).

mod chunked;
mod custom;
mod directions;
mod ops;
mod patch;
mod scan_loop;
mod ss2d;
mod vss;
mod weights;

use burn::tensor::{backend::Backend, Tensor};
use vmunet_model::{VmUnet, VmUnetConfig};

use vmunet_onnx_ir::pb::{GraphProto, ValueInfoProto};
use vmunet_onnx_ir::{DataType, Dim, Graph};

use crate::ExportOptions;

/// A float32 tensor value description.
fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    vmunet_onnx_ir::value_info(name, DataType::Float, dims)
}

/// The exporter's float32 shorthands over the contract crate's [`Graph`].
trait F32Graph {
    /// Adds a float32 initializer under `name` (checkpoint keys); the shape comes from the
    /// same tensor as the data.
    fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String;
    /// A float32 constant, deduplicated by value.
    fn floats(&mut self, dims: &[usize], data: &[f32]) -> String;
}

impl F32Graph for Graph {
    fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.add_initializer(name, dims, &data)
            .unwrap_or_else(|e| panic!("exporter invariant: {e}"))
    }
    fn floats(&mut self, dims: &[usize], data: &[f32]) -> String {
        self.constant(dims, data)
            .unwrap_or_else(|e| panic!("exporter invariant: {e}"))
    }
}

/// A size known at export time (`C`) or computed in the graph (`T`: a 1-element int64 tensor).
#[derive(Debug, Clone)]
enum Sz {
    C(i64),
    T(String),
}

/// The dims and float32 values of a parameter tensor.
fn data<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    let v = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensor");
    (dims, v)
}

/// Lowering context: the graph, the config and the export options.
pub struct Lower<'a> {
    pub g: Graph,
    pub cfg: &'a VmUnetConfig,
    pub opts: &'a ExportOptions,
}

/// Lowers the whole network; returns the main graph.
pub fn lower_model<B: Backend>(
    model: &VmUnet<B>,
    cfg: &VmUnetConfig,
    opts: &ExportOptions,
) -> GraphProto {
    let mut lw = Lower {
        g: Graph::new("vmunet"),
        cfg,
        opts,
    };
    let (hd, wd) = if opts.dynamic_hw {
        (Dim::from("height"), Dim::from("width"))
    } else {
        (Dim::Fixed(opts.height), Dim::Fixed(opts.width))
    };
    lw.g.add_input(value_info(
        "input",
        &[Dim::from("batch"), Dim::Fixed(cfg.input_channels), hd, wd],
    ));
    let mut x = lw.patch_embed("input", &model.patch_embed);
    let mut hw = if opts.dynamic_hw {
        (lw.dim_of(&x, 1, "hw"), lw.dim_of(&x, 2, "hw"))
    } else {
        let p = cfg.patch_size;
        (
            Sz::C((opts.height / p) as i64),
            Sz::C((opts.width / p) as i64),
        )
    };
    let mut skips = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        skips.push(x.clone());
        let c = cfg.dims[i];
        for (j, blk) in layer.blocks.iter().enumerate() {
            x = lw.block(&x, blk, &format!("layers.{i}.blocks.{j}"), &hw);
        }
        if let Some(down) = &layer.downsample {
            let key = format!("layers.{i}.downsample");
            x = lw.merging(&x, down, &key, &hw.0, c);
            hw = (lw.scale(&hw.0, 1, 2, &key), lw.scale(&hw.1, 1, 2, &key));
        }
    }
    let dec = cfg.dims_decoder();
    for (i, layer) in model.layers_up.iter().enumerate() {
        if i > 0 {
            let skip = skips[skips.len() - i].clone();
            x =
                lw.g.op("Add", &[&x, &skip], vec![], &format!("layers_up.{i}.skip"));
        }
        if let Some(up) = &layer.upsample {
            let key = format!("layers_up.{i}.upsample");
            x = lw.expand(&x, up, &key, &hw.0, 2 * dec[i]);
            hw = (lw.scale(&hw.0, 2, 1, &key), lw.scale(&hw.1, 2, 1, &key));
        }
        for (j, blk) in layer.blocks.iter().enumerate() {
            x = lw.block(&x, blk, &format!("layers_up.{i}.blocks.{j}"), &hw);
        }
    }
    x = lw.expand(&x, &model.final_up, "final_up", &hw.0, cfg.dims[0]);
    let y = lw.transpose(&x, &[0, 3, 1, 2], "final_conv");
    let y = lw.conv(&y, &model.final_conv, "final_conv");
    lw.g.op_into("Identity", &[&y], "logits");
    let (hd, wd) = if opts.dynamic_hw {
        (Dim::from("height"), Dim::from("width"))
    } else {
        (Dim::Fixed(opts.height), Dim::Fixed(opts.width))
    };
    lw.g.add_output(value_info(
        "logits",
        &[Dim::from("batch"), Dim::Fixed(cfg.num_classes), hd, wd],
    ));
    lw.g.into_proto()
}
