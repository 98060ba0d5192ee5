//! Lowering of each VM-UNet module to standard ONNX operators, walking the burn module tree.
//! Each function mirrors the module's `forward` in `vmunet-model`.

use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::{backend::Backend, Tensor};
use vmunet_model::{
    PatchEmbed2D, PatchExpand2D, PatchMerging2D, Ss2d, VmUnet, VmUnetConfig, VssBlock,
};
use vmunet_scan::{position, CrossScanDims, DIRECTIONS};

use crate::builder::{value_info, Attr, Dim, Graph};

fn data<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    let v = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensor");
    (dims, v)
}

/// Lowering context: the graph, the config and the static spatial size.
pub struct Lower<'a> {
    pub g: Graph,
    pub cfg: &'a VmUnetConfig,
}

impl Lower<'_> {
    fn param<B: Backend, const D: usize>(&mut self, key: &str, t: Tensor<B, D>) -> String {
        let (dims, v) = data(t);
        self.g.weight(key, &dims, v)
    }

    fn reshape(&mut self, x: &str, shape: &[i64], hint: &str) -> String {
        let s = self.g.ints1(shape);
        self.g.op("Reshape", &[x, &s], vec![], hint)
    }

    fn transpose(&mut self, x: &str, perm: &[i64], hint: &str) -> String {
        self.g.op(
            "Transpose",
            &[x],
            vec![("perm", Attr::Ints(perm.to_vec()))],
            hint,
        )
    }

    fn silu(&mut self, x: &str, hint: &str) -> String {
        let s = self.g.op("Sigmoid", &[x], vec![], hint);
        self.g.op("Mul", &[x, &s], vec![], hint)
    }

    /// `Linear`: MatMul with the (in, out) weight, plus bias.
    fn linear<B: Backend>(&mut self, x: &str, m: &Linear<B>, key: &str) -> String {
        let w = self.param(&format!("{key}.weight"), m.weight.val());
        let y = self.g.op("MatMul", &[x, &w], vec![], key);
        match &m.bias {
            Some(b) => {
                let b = self.param(&format!("{key}.bias"), b.val());
                self.g.op("Add", &[&y, &b], vec![], key)
            }
            None => y,
        }
    }

    /// Channels-last `LayerNorm` (opset 17 `LayerNormalization`, axis -1).
    fn layer_norm<B: Backend>(&mut self, x: &str, m: &LayerNorm<B>, key: &str) -> String {
        let w = self.param(&format!("{key}.weight"), m.gamma.val());
        let mut inputs = vec![x.to_string(), w];
        if let Some(b) = &m.beta {
            inputs.push(self.param(&format!("{key}.bias"), b.val()));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.g.op(
            "LayerNormalization",
            &refs,
            vec![
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(self.cfg.layer_norm_eps as f32)),
            ],
            key,
        )
    }

    fn conv<B: Backend>(&mut self, x: &str, m: &Conv2d<B>, key: &str) -> String {
        let w = self.param(&format!("{key}.weight"), m.weight.val());
        let mut inputs = vec![x.to_string(), w];
        if let Some(b) = &m.bias {
            inputs.push(self.param(&format!("{key}.bias"), b.val()));
        }
        let pads = match m.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => vec![t as i64, l as i64, b as i64, r as i64],
            _ => vec![0; 4],
        };
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.g.op(
            "Conv",
            &refs,
            vec![
                (
                    "kernel_shape",
                    Attr::Ints(m.kernel_size.iter().map(|&k| k as i64).collect()),
                ),
                (
                    "strides",
                    Attr::Ints(m.stride.iter().map(|&k| k as i64).collect()),
                ),
                ("pads", Attr::Ints(pads)),
                ("group", Attr::Int(m.groups as i64)),
            ],
            key,
        )
    }

    fn patch_embed<B: Backend>(&mut self, x: &str, m: &PatchEmbed2D<B>) -> String {
        let y = self.conv(x, &m.proj, "patch_embed.proj");
        let y = self.transpose(&y, &[0, 2, 3, 1], "patch_embed");
        self.layer_norm(&y, &m.norm, "patch_embed.norm")
    }

    /// (N, h, w, C) -> (N, h/2, w/2, 2C).
    fn merging<B: Backend>(
        &mut self,
        x: &str,
        m: &PatchMerging2D<B>,
        key: &str,
        (h, w, c): (usize, usize, usize),
    ) -> String {
        let (h2, w2) = (h as i64 / 2, w as i64 / 2);
        let y = self.reshape(x, &[0, h2, 2, w2, 2, c as i64], key);
        let y = self.transpose(&y, &[0, 1, 3, 4, 2, 5], key);
        let y = self.reshape(&y, &[0, h2, w2, 4 * c as i64], key);
        let y = self.layer_norm(&y, &m.norm, &format!("{key}.norm"));
        self.linear(&y, &m.reduction, &format!("{key}.reduction"))
    }

    /// (N, h, w, C) -> (N, s h, s w, C / s).
    fn expand<B: Backend>(
        &mut self,
        x: &str,
        m: &PatchExpand2D<B>,
        key: &str,
        (h, w, c): (usize, usize, usize),
    ) -> String {
        let s = m.scale as i64;
        let co = c as i64 / s;
        let y = self.linear(x, &m.expand, &format!("{key}.expand"));
        let y = self.reshape(&y, &[0, h as i64, w as i64, s, s, co], key);
        let y = self.transpose(&y, &[0, 1, 3, 2, 4, 5], key);
        let y = self.reshape(&y, &[0, h as i64 * s, w as i64 * s, co], key);
        self.layer_norm(&y, &m.norm, &format!("{key}.norm"))
    }

    fn block<B: Backend>(
        &mut self,
        x: &str,
        m: &VssBlock<B>,
        key: &str,
        hw: (usize, usize),
    ) -> String {
        let y = self.layer_norm(x, &m.ln_1, &format!("{key}.ln_1"));
        let y = self.ss2d(&y, &m.self_attention, &format!("{key}.self_attention"), hw);
        self.g.op("Add", &[x, &y], vec![], key)
    }

    /// SS2D with the selective scan as an ONNX `Scan` over the sequence, all four directions
    /// in one loop (state `(N, K, D, S)`, float32). The body uses `Mul` + `ReduceSum` only.
    fn ss2d<B: Backend>(
        &mut self,
        x: &str,
        m: &Ss2d<B>,
        key: &str,
        (h, w): (usize, usize),
    ) -> String {
        let (d, r, s, k, l) = (m.d_inner, m.dt_rank, m.d_state, DIRECTIONS, h * w);
        let p = r + 2 * s;
        let (di, li, ki) = (d as i64, l as i64, k as i64);
        let xz = self.linear(x, &m.in_proj, &format!("{key}.in_proj"));
        let split = self.g.ints1(&[di, di]);
        let parts = self.g.node(
            "Split",
            &[&xz, &split],
            vec![("axis", Attr::Int(-1))],
            key,
            2,
        );
        let (xs, z) = (&parts[0], &parts[1]);
        let xc = self.transpose(xs, &[0, 3, 1, 2], key);
        let xc = self.conv(&xc, &m.conv2d, &format!("{key}.conv2d"));
        let xc = self.silu(&xc, key);
        let u = self.transpose(&xc, &[0, 2, 3, 1], key);
        let u = self.reshape(&u, &[0, li, di], key); // (N, L, D)
                                                     // x_dbl = u @ W (D, K P): the four directions' projections at every position.
        let (wd, wv) = data(m.x_proj_weight.val()); // (K, P, D)
        let mut wt = vec![0f32; d * k * p];
        for kk in 0..k {
            for pp in 0..p {
                for dd in 0..d {
                    wt[dd * k * p + kk * p + pp] = wv[(kk * wd[1] + pp) * wd[2] + dd];
                }
            }
        }
        let wproj = self
            .g
            .weight(&format!("{key}.x_proj_weight"), &[d, k * p], wt);
        let x_dbl = self.g.op("MatMul", &[&u, &wproj], vec![], key);
        let x_dbl = self.reshape(&x_dbl, &[0, li, ki, p as i64], key); // (N, L, K, P)
        let x_dbl = self.transpose(&x_dbl, &[0, 2, 1, 3], key); // (N, K, L, P)
        let slice = |me: &mut Self, from: usize, to: usize| {
            let st = me.g.ints1(&[from as i64]);
            let en = me.g.ints1(&[to as i64]);
            let ax = me.g.ints1(&[3]);
            me.g.op("Slice", &[&x_dbl, &st, &en, &ax], vec![], key)
        };
        let dt_in = slice(self, 0, r);
        let bs = slice(self, r, r + s);
        let cs = slice(self, r + s, p);
        // delta = softplus(dt_in @ dt_projs_weight^T + bias): (N, K, L, D).
        let (_, dtw) = data(m.dt_projs_weight.val()); // (K, D, R)
        let mut dtt = vec![0f32; k * r * d];
        for kk in 0..k {
            for dd in 0..d {
                for rr in 0..r {
                    dtt[(kk * r + rr) * d + dd] = dtw[(kk * d + dd) * r + rr];
                }
            }
        }
        let dtw = self
            .g
            .weight(&format!("{key}.dt_projs_weight"), &[k, r, d], dtt);
        let delta = self.g.op("MatMul", &[&dt_in, &dtw], vec![], key);
        let (_, bias) = data(m.dt_projs_bias.val());
        let bias = self
            .g
            .weight(&format!("{key}.dt_projs_bias"), &[k, 1, d], bias);
        let delta = self.g.op("Add", &[&delta, &bias], vec![], key);
        let delta = self.g.op("Softplus", &[&delta], vec![], key);
        // Reorder every direction's sequence into its scan order with one Gather.
        let dims = CrossScanDims {
            batch: 1,
            height: h,
            width: w,
            channels: d,
            d_state: s,
            dt_rank: r,
        };
        let pos = |kk: usize, t: usize| position(kk, t, &dims);
        let fwd: Vec<i64> = (0..k * l)
            .map(|i| ((i / l) * l + pos(i / l, i % l)) as i64)
            .collect();
        let fwd = self.g.ints1(&fwd);
        let u_idx: Vec<i64> = (0..k * l).map(|i| pos(i / l, i % l) as i64).collect();
        let u_idx = self.g.ints1(&u_idx);
        let to_seq = |me: &mut Self, t: &str, width: usize, idx: &str, flat: bool| -> String {
            // (N, K, L, X) or (N, L, X) -> (L, N, K, X) in scan order.
            let t = if flat {
                t.to_string()
            } else {
                me.reshape(t, &[0, ki * li, width as i64], key)
            };
            let t =
                me.g.op("Gather", &[&t, idx], vec![("axis", Attr::Int(1))], key);
            let t = me.reshape(&t, &[0, ki, li, width as i64], key);
            me.transpose(&t, &[2, 0, 1, 3], key)
        };
        let u_seq = to_seq(self, &u, d, &u_idx, true);
        let dt_seq = to_seq(self, &delta, d, &fwd, false);
        let b_seq = to_seq(self, &bs, s, &fwd, false);
        let c_seq = to_seq(self, &cs, s, &fwd, false);
        // Initial state (N, K, D, S) of zeros, batch taken from the input.
        let shape_u = self.g.op("Shape", &[&u], vec![], key);
        let st0 = self.g.ints1(&[0]);
        let st1 = self.g.ints1(&[1]);
        let n = self.g.op("Slice", &[&shape_u, &st0, &st1], vec![], key);
        let rest = self.g.ints1(&[ki, di, s as i64]);
        let hshape = self
            .g
            .op("Concat", &[&n, &rest], vec![("axis", Attr::Int(0))], key);
        let zero = self.g.floats(&[1, 1, 1, 1], &[0.0]);
        let h0 = self.g.op("Expand", &[&zero, &hshape], vec![], key);
        let body = scan_body(m, key, k, d, s);
        let outs = self.g.node(
            "Scan",
            &[&h0, &u_seq, &dt_seq, &b_seq, &c_seq],
            vec![
                ("body", Attr::Graph(body)),
                ("num_scan_inputs", Attr::Int(4)),
            ],
            key,
            2,
        );
        // y_seq (L, N, K, D) back to row-major positions, summed over directions.
        let y = self.transpose(&outs[1], &[1, 2, 0, 3], key); // (N, K, L, D)
        let y = self.reshape(&y, &[0, ki * li, di], key);
        let mut inv = vec![0i64; k * l];
        for kk in 0..k {
            for t in 0..l {
                inv[kk * l + pos(kk, t)] = (kk * l + t) as i64;
            }
        }
        let inv = self.g.ints1(&inv);
        let y = self
            .g
            .op("Gather", &[&y, &inv], vec![("axis", Attr::Int(1))], key);
        let y = self.reshape(&y, &[0, ki, li, di], key);
        let ax1 = self.g.ints1(&[1]);
        let y = self.g.op(
            "ReduceSum",
            &[&y, &ax1],
            vec![("keepdims", Attr::Int(0))],
            key,
        ); // (N, L, D)
           // D skip summed over directions: y += u * sum_k Ds[k].
        let (_, ds) = data(m.ds.val());
        let dsum: Vec<f32> = (0..d)
            .map(|dd| (0..k).map(|kk| ds[kk * d + dd]).sum())
            .collect();
        let dsum = self.g.weight(&format!("{key}.Ds"), &[d], dsum);
        let skip = self.g.op("Mul", &[&u, &dsum], vec![], key);
        let y = self.g.op("Add", &[&y, &skip], vec![], key);
        let y = self.reshape(&y, &[0, h as i64, w as i64, di], key);
        let y = self.layer_norm(&y, &m.out_norm, &format!("{key}.out_norm"));
        let gate = self.silu(z, key);
        let y = self.g.op("Mul", &[&y, &gate], vec![], key);
        self.linear(&y, &m.out_proj, &format!("{key}.out_proj"))
    }
}

/// One scan step for all directions: `h = exp(dt A) h + dt u B`, `y = sum_s h C`.
fn scan_body<B: Backend>(
    m: &Ss2d<B>,
    key: &str,
    k: usize,
    d: usize,
    s: usize,
) -> tract_onnx::pb::GraphProto {
    let mut g = Graph::default();
    let (_, a_logs) = data(m.a_logs.val());
    let a: Vec<f32> = a_logs.iter().map(|v| -v.exp()).collect();
    let a = g.weight(&format!("{key}.A"), &[k, d, s], a);
    let names = ["h_in", "u_t", "dt_t", "b_t", "c_t"];
    let dims: [Vec<Dim>; 5] = [
        vec![Dim::Any, Dim::Fixed(k), Dim::Fixed(d), Dim::Fixed(s)],
        vec![Dim::Any, Dim::Fixed(k), Dim::Fixed(d)],
        vec![Dim::Any, Dim::Fixed(k), Dim::Fixed(d)],
        vec![Dim::Any, Dim::Fixed(k), Dim::Fixed(s)],
        vec![Dim::Any, Dim::Fixed(k), Dim::Fixed(s)],
    ];
    for (n, dm) in names.iter().zip(dims.iter()) {
        g.inputs.push(value_info(n, dm));
    }
    let ax3 = g.ints1(&[3]);
    let ax2 = g.ints1(&[2]);
    let dt4 = g.op("Unsqueeze", &["dt_t", &ax3], vec![], "step");
    let da = g.op("Mul", &[&dt4, &a], vec![], "step");
    let da = g.op("Exp", &[&da], vec![], "step");
    let dtu = g.op("Mul", &["dt_t", "u_t"], vec![], "step");
    let dtu = g.op("Unsqueeze", &[&dtu, &ax3], vec![], "step");
    let b = g.op("Unsqueeze", &["b_t", &ax2], vec![], "step");
    let dbu = g.op("Mul", &[&dtu, &b], vec![], "step");
    let hd = g.op("Mul", &[&da, "h_in"], vec![], "step");
    let h = g.op("Add", &[&hd, &dbu], vec![], "step");
    let c = g.op("Unsqueeze", &["c_t", &ax2], vec![], "step");
    let hc = g.op("Mul", &[&h, &c], vec![], "step");
    let y = g.op(
        "ReduceSum",
        &[&hc, &ax3],
        vec![("keepdims", Attr::Int(0))],
        "step",
    );
    let h_out = g.op("Identity", &[&h], vec![], "h_out");
    let y_out = g.op("Identity", &[&y], vec![], "y_out");
    g.outputs.push(value_info(
        &h_out,
        &[Dim::Any, Dim::Fixed(k), Dim::Fixed(d), Dim::Fixed(s)],
    ));
    g.outputs.push(value_info(
        &y_out,
        &[Dim::Any, Dim::Fixed(k), Dim::Fixed(d)],
    ));
    g.build(&format!("{key}.scan"))
}

/// Lowers the whole network for an input of `height` x `width`; returns the main graph.
pub fn lower_model<B: Backend>(
    model: &VmUnet<B>,
    cfg: &VmUnetConfig,
    height: usize,
    width: usize,
) -> tract_onnx::pb::GraphProto {
    let mut lw = Lower {
        g: Graph::default(),
        cfg,
    };
    lw.g.inputs.push(value_info(
        "input",
        &[
            Dim::Named("batch"),
            Dim::Fixed(cfg.input_channels),
            Dim::Fixed(height),
            Dim::Fixed(width),
        ],
    ));
    let mut x = lw.patch_embed("input", &model.patch_embed);
    let (mut h, mut w) = (height / cfg.patch_size, width / cfg.patch_size);
    let mut skips = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        skips.push(x.clone());
        let c = cfg.dims[i];
        for (j, blk) in layer.blocks.iter().enumerate() {
            x = lw.block(&x, blk, &format!("layers.{i}.blocks.{j}"), (h, w));
        }
        if let Some(down) = &layer.downsample {
            x = lw.merging(&x, down, &format!("layers.{i}.downsample"), (h, w, c));
            h /= 2;
            w /= 2;
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
            x = lw.expand(
                &x,
                up,
                &format!("layers_up.{i}.upsample"),
                (h, w, 2 * dec[i]),
            );
            h *= 2;
            w *= 2;
        }
        for (j, blk) in layer.blocks.iter().enumerate() {
            x = lw.block(&x, blk, &format!("layers_up.{i}.blocks.{j}"), (h, w));
        }
    }
    x = lw.expand(&x, &model.final_up, "final_up", (h, w, cfg.dims[0]));
    let y = lw.transpose(&x, &[0, 3, 1, 2], "final_conv");
    let y = lw.conv(&y, &model.final_conv, "final_conv");
    lw.g.op_into("Identity", &[&y], "logits");
    lw.g.outputs.push(value_info(
        "logits",
        &[
            Dim::Named("batch"),
            Dim::Fixed(cfg.num_classes),
            Dim::Fixed(height),
            Dim::Fixed(width),
        ],
    ));
    lw.g.build("vmunet")
}
