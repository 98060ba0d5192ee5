//! Lowering of each VM-UNet module to standard ONNX operators, walking the burn module tree.
//! Each function mirrors the module's `forward` in `vmunet-model`.

use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::{backend::Backend, Tensor};
use vmunet_model::{
    PatchEmbed2D, PatchExpand2D, PatchMerging2D, Ss2d, VmUnet, VmUnetConfig, VssBlock,
};
use vmunet_scan::{position, CrossScanDims, DIRECTIONS};

use vmunet_onnx_ir::pb::{GraphProto, ValueInfoProto};
use vmunet_onnx_ir::{Attr, DataType, Dim, Graph};

use crate::{ExportOptions, ScanForm, CUSTOM_DOMAIN, CUSTOM_OP};

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

    /// A shape tensor from fixed and computed parts.
    fn shape_of(&mut self, parts: &[Sz]) -> String {
        let fixed: Option<Vec<i64>> = parts
            .iter()
            .map(|p| match p {
                Sz::C(v) => Some(*v),
                Sz::T(_) => None,
            })
            .collect();
        if let Some(v) = fixed {
            return self.g.ints1(&v);
        }
        let names: Vec<String> = parts
            .iter()
            .map(|p| match p {
                Sz::C(v) => self.g.ints1(&[*v]),
                Sz::T(n) => n.clone(),
            })
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.g
            .op("Concat", &refs, vec![("axis", Attr::Int(0))], "shape")
    }

    fn reshape_to(&mut self, x: &str, parts: &[Sz], hint: &str) -> String {
        let s = self.shape_of(parts);
        self.g.op("Reshape", &[x, &s], vec![], hint)
    }

    /// Size of `axis` of `x`, as a graph value.
    fn dim_of(&mut self, x: &str, axis: i64, hint: &str) -> Sz {
        let shape = self.g.op("Shape", &[x], vec![], hint);
        let st = self.g.ints1(&[axis]);
        let en = self.g.ints1(&[axis + 1]);
        Sz::T(self.g.op("Slice", &[&shape, &st, &en], vec![], hint))
    }

    /// `s * mul / div`, folded when `s` is known.
    fn scale(&mut self, s: &Sz, mul: i64, div: i64, hint: &str) -> Sz {
        match s {
            Sz::C(v) => Sz::C(v * mul / div),
            Sz::T(n) => {
                let mut n = n.clone();
                if mul != 1 {
                    let c = self.g.ints1(&[mul]);
                    n = self.g.op("Mul", &[&n, &c], vec![], hint);
                }
                if div != 1 {
                    let c = self.g.ints1(&[div]);
                    n = self.g.op("Div", &[&n, &c], vec![], hint);
                }
                Sz::T(n)
            }
        }
    }

    fn slice(&mut self, x: &str, axis: i64, from: i64, to: i64, hint: &str) -> String {
        let st = self.g.ints1(&[from]);
        let en = self.g.ints1(&[to]);
        let ax = self.g.ints1(&[axis]);
        self.g.op("Slice", &[x, &st, &en, &ax], vec![], hint)
    }

    /// Reverses `axis`.
    fn flip(&mut self, x: &str, axis: i64, hint: &str) -> String {
        let st = self.g.ints1(&[-1]);
        let en = self.g.ints1(&[i64::MIN]);
        let ax = self.g.ints1(&[axis]);
        let step = self.g.ints1(&[-1]);
        self.g.op("Slice", &[x, &st, &en, &ax, &step], vec![], hint)
    }

    fn unsqueeze(&mut self, x: &str, axis: i64, hint: &str) -> String {
        let ax = self.g.ints1(&[axis]);
        self.g.op("Unsqueeze", &[x, &ax], vec![], hint)
    }

    fn concat(&mut self, xs: &[&str], axis: i64, hint: &str) -> String {
        self.g
            .op("Concat", xs, vec![("axis", Attr::Int(axis))], hint)
    }

    /// Shifts `x` by `by` along `axis` of a rank-`rank` tensor, filling with `fill`
    /// (`y[t] = x[t - by]`).
    fn shift(
        &mut self,
        x: &str,
        rank: usize,
        axis: usize,
        by: i64,
        fill: f32,
        hint: &str,
    ) -> String {
        let mut pads = vec![0i64; 2 * rank];
        pads[axis] = by;
        let pads = self.g.ints1(&pads);
        let value = self.g.floats(&[], &[fill]);
        let padded = self.g.op("Pad", &[x, &pads, &value], vec![], hint);
        self.slice(&padded, axis as i64, 0, -by, hint)
    }

    /// Hillis-Steele scan of the pairs `(decay, state)` of a rank-6 tensor along `axis`, for
    /// sequences of up to `len` steps: afterwards `state[t]` is the recurrence's state at `t`
    /// from a zero start and `decay[t]` the product of the decays up to `t`.
    fn log_depth_scan(
        &mut self,
        decay: &str,
        state: &str,
        axis: usize,
        len: i64,
        key: &str,
    ) -> (String, String) {
        let (mut decay, mut state) = (decay.to_string(), state.to_string());
        let mut sh = 1;
        while sh < len {
            let ds = self.shift(&decay, 6, axis, sh, 1.0, key);
            let hs = self.shift(&state, 6, axis, sh, 0.0, key);
            let carried = self.g.op("Mul", &[&decay, &hs], vec![], key);
            state = self.g.op("Add", &[&state, &carried], vec![], key);
            decay = self.g.op("Mul", &[&decay, &ds], vec![], key);
            sh *= 2;
        }
        (decay, state)
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
        h: &Sz,
        c: usize,
    ) -> String {
        let h2 = self.scale(h, 1, 2, key);
        let c = c as i64;
        let y = self.reshape_to(
            x,
            &[Sz::C(0), h2, Sz::C(2), Sz::C(-1), Sz::C(2), Sz::C(c)],
            key,
        );
        let y = self.transpose(&y, &[0, 1, 3, 4, 2, 5], key);
        let y = self.reshape(&y, &[0, 0, 0, 4 * c], key);
        let y = self.layer_norm(&y, &m.norm, &format!("{key}.norm"));
        self.linear(&y, &m.reduction, &format!("{key}.reduction"))
    }

    /// (N, h, w, C) -> (N, s h, s w, C / s).
    fn expand<B: Backend>(
        &mut self,
        x: &str,
        m: &PatchExpand2D<B>,
        key: &str,
        h: &Sz,
        c: usize,
    ) -> String {
        let s = m.scale as i64;
        let co = c as i64 / s;
        let y = self.linear(x, &m.expand, &format!("{key}.expand"));
        let y = self.reshape(&y, &[0, 0, 0, s, s, co], key);
        let y = self.transpose(&y, &[0, 1, 3, 2, 4, 5], key);
        let hs = self.scale(h, s, 1, key);
        let y = self.reshape_to(&y, &[Sz::C(0), hs, Sz::C(-1), Sz::C(co)], key);
        self.layer_norm(&y, &m.norm, &format!("{key}.norm"))
    }

    fn block<B: Backend>(&mut self, x: &str, m: &VssBlock<B>, key: &str, hw: &(Sz, Sz)) -> String {
        let y = self.layer_norm(x, &m.ln_1, &format!("{key}.ln_1"));
        let y = self.ss2d(&y, &m.self_attention, &format!("{key}.self_attention"), hw);
        self.g.op("Add", &[x, &y], vec![], key)
    }

    /// SS2D. The selective scan is written as the export options say: an ONNX `Scan` loop,
    /// a chunked log-depth scan without control flow, or the `ai.vmunet` custom operator.
    fn ss2d<B: Backend>(&mut self, x: &str, m: &Ss2d<B>, key: &str, hw: &(Sz, Sz)) -> String {
        let (d, r, s, k) = (m.d_inner, m.dt_rank, m.d_state, DIRECTIONS);
        let p = r + 2 * s;
        let (di, ki) = (d as i64, k as i64);
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
        let u = self.transpose(&xc, &[0, 2, 3, 1], key); // (N, h, w, D)
        let (wd, wv) = data(m.x_proj_weight.val()); // (K, P, D)
        let (_, dtw) = data(m.dt_projs_weight.val()); // (K, D, R)
        let (_, bias) = data(m.dt_projs_bias.val()); // (K, D)
        let (_, ds) = data(m.ds.val()); // (K D)
        let y = if self.opts.scan == ScanForm::Custom {
            // x_dbl = u @ W (D, K P): every direction's projections at every position.
            let mut wt = vec![0f32; d * k * p];
            for (i, w) in wt.iter_mut().enumerate() {
                let (dd, kk, pp) = (i / (k * p), (i / p) % k, i % p);
                *w = wv[(kk * wd[1] + pp) * wd[2] + dd];
            }
            let wproj = self
                .g
                .weight(&format!("{key}.x_proj_weight"), &[d, k * p], wt);
            let uf = self.reshape(&u, &[0, -1, di], key);
            let x_dbl = self.g.op("MatMul", &[&uf, &wproj], vec![], key);
            let x_dbl = self.reshape(&x_dbl, &[0, -1, ki, p as i64], key); // (N, L, K, P)
            let dt_in = self.slice(&x_dbl, 3, 0, r as i64, key);
            let dt_in = self.transpose(&dt_in, &[0, 2, 1, 3], key); // (N, K, L, R)
            let dtw = self.dt_weight(key, &dtw, k, d, r);
            let delta = self.g.op("MatMul", &[&dt_in, &dtw], vec![], key); // (N, K, L, D)
            let a = self.g.weight(&format!("{key}.A"), &[k * d, s], a_matrix(m));
            let dsw = self.g.weight(&format!("{key}.Ds"), &[k * d], ds);
            let bias = self
                .g
                .weight(&format!("{key}.dt_projs_bias"), &[k * d], bias);
            self.g.op_in_domain(
                CUSTOM_DOMAIN,
                CUSTOM_OP,
                &[&u, &delta, &x_dbl, &a, &dsw, &bias],
                key,
            )
        } else {
            let u_seq = self.scan_order(&u, d, hw, key); // (N, K, L, D)
                                                         // Per-direction projections (K, D, P), applied to each direction's sequence.
            let mut wk = vec![0f32; k * d * p];
            for (i, w) in wk.iter_mut().enumerate() {
                let (kk, dd, pp) = (i / (d * p), (i / p) % d, i % p);
                *w = wv[(kk * wd[1] + pp) * wd[2] + dd];
            }
            let wk = self
                .g
                .weight(&format!("{key}.x_proj_weight"), &[k, d, p], wk);
            let x_dbl = self.g.op("MatMul", &[&u_seq, &wk], vec![], key); // (N, K, L, P)
            let dt_in = self.slice(&x_dbl, 3, 0, r as i64, key);
            let bs = self.slice(&x_dbl, 3, r as i64, (r + s) as i64, key);
            let cs = self.slice(&x_dbl, 3, (r + s) as i64, p as i64, key);
            let dtw = self.dt_weight(key, &dtw, k, d, r);
            let delta = self.g.op("MatMul", &[&dt_in, &dtw], vec![], key);
            let bias = self
                .g
                .weight(&format!("{key}.dt_projs_bias"), &[k, 1, d], bias);
            let delta = self.g.op("Add", &[&delta, &bias], vec![], key);
            let delta = self.g.op("Softplus", &[&delta], vec![], key); // (N, K, L, D)
            let y_seq = match self.opts.scan {
                ScanForm::Chunked => self.scan_chunked(m, key, [&u_seq, &delta, &bs, &cs], hw),
                _ => self.scan_loop(m, key, [&u_seq, &delta, &bs, &cs], hw),
            };
            let y = self.row_major(&y_seq, d, hw, key); // (N, h, w, D)
                                                        // D skip summed over directions: y += u * sum_k Ds[k].
            let dsum: Vec<f32> = (0..d)
                .map(|dd| (0..k).map(|kk| ds[kk * d + dd]).sum())
                .collect();
            let dsum = self.g.weight(&format!("{key}.Ds"), &[d], dsum);
            let skip = self.g.op("Mul", &[&u, &dsum], vec![], key);
            self.g.op("Add", &[&y, &skip], vec![], key)
        };
        let y = self.layer_norm(&y, &m.out_norm, &format!("{key}.out_norm"));
        let gate = self.silu(z, key);
        let y = self.g.op("Mul", &[&y, &gate], vec![], key);
        self.linear(&y, &m.out_proj, &format!("{key}.out_proj"))
    }

    /// `dt_projs_weight` (K, D, R) as the (K, R, D) right operand of a batched MatMul.
    fn dt_weight(&mut self, key: &str, dtw: &[f32], k: usize, d: usize, r: usize) -> String {
        let mut t = vec![0f32; k * r * d];
        for (i, w) in t.iter_mut().enumerate() {
            let (kk, rr, dd) = (i / (r * d), (i / d) % r, i % d);
            *w = dtw[(kk * d + dd) * r + rr];
        }
        self.g
            .weight(&format!("{key}.dt_projs_weight"), &[k, r, d], t)
    }

    /// (N, h, w, X) -> (N, K, L, X): each direction's sequence in its scan order
    /// ([`vmunet_scan::position`]). Fixed sizes use one `Gather`; dynamic ones transposes and
    /// reversals.
    fn scan_order(&mut self, u: &str, x: usize, (h, w): &(Sz, Sz), key: &str) -> String {
        let xi = x as i64;
        let flat = self.reshape(u, &[0, -1, xi], key);
        if let (Sz::C(h), Sz::C(w)) = (h, w) {
            let dims = scan_dims(*h, *w);
            let l = dims.len();
            let idx: Vec<i64> = (0..DIRECTIONS * l)
                .map(|i| position(i / l, i % l, &dims) as i64)
                .collect();
            let idx = self.g.ints1(&idx);
            let t = self
                .g
                .op("Gather", &[&flat, &idx], vec![("axis", Attr::Int(1))], key);
            return self.reshape(&t, &[0, DIRECTIONS as i64, l as i64, xi], key);
        }
        let tr = self.transpose(u, &[0, 2, 1, 3], key);
        let cols = self.reshape(&tr, &[0, -1, xi], key);
        let a = self.unsqueeze(&flat, 1, key);
        let b = self.unsqueeze(&cols, 1, key);
        let fwd = self.concat(&[&a, &b], 1, key); // (N, 2, L, X)
        let rev = self.flip(&fwd, 2, key);
        self.concat(&[&fwd, &rev], 1, key)
    }

    /// (N, K, L, D) in scan order -> (N, h, w, D), summed over the directions.
    fn row_major(&mut self, y: &str, d: usize, (h, w): &(Sz, Sz), key: &str) -> String {
        let di = d as i64;
        if let (Sz::C(hc), Sz::C(wc)) = (h, w) {
            let dims = scan_dims(*hc, *wc);
            let l = dims.len();
            let mut inv = vec![0i64; DIRECTIONS * l];
            for kk in 0..DIRECTIONS {
                for t in 0..l {
                    inv[kk * l + position(kk, t, &dims)] = (kk * l + t) as i64;
                }
            }
            let y = self.reshape(y, &[0, (DIRECTIONS * l) as i64, di], key);
            let inv = self.g.ints1(&inv);
            let y = self
                .g
                .op("Gather", &[&y, &inv], vec![("axis", Attr::Int(1))], key);
            let y = self.reshape(&y, &[0, DIRECTIONS as i64, l as i64, di], key);
            let ax1 = self.g.ints1(&[1]);
            let y = self.g.op(
                "ReduceSum",
                &[&y, &ax1],
                vec![("keepdims", Attr::Int(0))],
                key,
            );
            return self.reshape(&y, &[0, *hc, *wc, di], key);
        }
        let fwd = self.slice(y, 1, 0, 2, key);
        let rev = self.slice(y, 1, 2, 4, key);
        let rev = self.flip(&rev, 2, key);
        let both = self.g.op("Add", &[&fwd, &rev], vec![], key); // (N, 2, L, D)
        let rows = self.slice(&both, 1, 0, 1, key);
        let rows = self.reshape_to(&rows, &[Sz::C(0), h.clone(), Sz::C(-1), Sz::C(di)], key);
        let cols = self.slice(&both, 1, 1, 2, key);
        let cols = self.reshape_to(&cols, &[Sz::C(0), w.clone(), Sz::C(-1), Sz::C(di)], key);
        let cols = self.transpose(&cols, &[0, 2, 1, 3], key);
        self.g.op("Add", &[&rows, &cols], vec![], key)
    }

    /// The scan as one ONNX `Scan` over the sequence, all four directions in one loop
    /// (state `(N, K, S, D)`, float32). The body uses elementwise ops + `ReduceSum` only.
    fn scan_loop<B: Backend>(
        &mut self,
        m: &Ss2d<B>,
        key: &str,
        [u, dt, b, c]: [&str; 4],
        (h, w): &(Sz, Sz),
    ) -> String {
        let (d, s, k) = (m.d_inner, m.d_state, DIRECTIONS);
        let (ki, di, si) = (k as i64, d as i64, s as i64);
        let seq: Vec<String> = [u, dt, b, c]
            .iter()
            .map(|t| self.transpose(t, &[2, 0, 1, 3], key)) // (L, N, K, X)
            .collect();
        // Steps per loop iteration: loop iterations cost far more than the arithmetic of one
        // step, so fixed-size exports take several steps per iteration.
        let unroll = match (h, w) {
            (Sz::C(h), Sz::C(w)) => {
                let l = (h * w) as usize;
                let mut u = self.opts.unroll.max(1);
                while !l.is_multiple_of(u) {
                    u -= 1;
                }
                u
            }
            _ => 1,
        };
        let n = self.dim_of(u, 0, key);
        // Initial state (1, N, K, S, D) of zeros, batch taken from the input.
        let hshape = self.shape_of(&[Sz::C(1), n.clone(), Sz::C(ki), Sz::C(si), Sz::C(di)]);
        let zero = self.g.floats(&[1, 1, 1, 1, 1], &[0.0]);
        let h0 = self.g.op("Expand", &[&zero, &hshape], vec![], key);
        // Broadcast shapes and dt u are prepared for all steps at once, outside the loop (the
        // full (L, N, K, S, D) decays are not: they would cost L times the state in memory).
        let dt5 = self.unsqueeze(&seq[1], 3, key); // (L, N, K, 1, D)
        let dtu = self.g.op("Mul", &[&seq[1], &seq[0]], vec![], key);
        let dtu = self.unsqueeze(&dtu, 3, key); // (L, N, K, 1, D)
        let b5 = self.unsqueeze(&seq[2], 4, key); // (L, N, K, S, 1)
        let c5 = self.unsqueeze(&seq[3], 4, key); // (L, N, K, S, 1)
        let ui = unroll as i64;
        let grouped = |me: &mut Self, x: &str, a: i64, bb: i64| -> String {
            // (L, N, K, a, b) -> (L / U, U, N, K, a, b)
            me.reshape_to(
                x,
                &[
                    Sz::C(-1),
                    Sz::C(ui),
                    n.clone(),
                    Sz::C(ki),
                    Sz::C(a),
                    Sz::C(bb),
                ],
                key,
            )
        };
        let ins = [
            grouped(self, &dt5, 1, di),
            grouped(self, &dtu, 1, di),
            grouped(self, &b5, si, 1),
            grouped(self, &c5, si, 1),
        ];
        let body = scan_body(m, key, k, d, s, unroll);
        let outs = self.g.node(
            "Scan",
            &[&h0, &ins[0], &ins[1], &ins[2], &ins[3]],
            vec![
                ("body", Attr::Graph(body)),
                ("num_scan_inputs", Attr::Int(4)),
            ],
            key,
            2,
        );
        // (L / U, U, N, K, D) -> (L, N, K, D) -> (N, K, L, D)
        let y = self.reshape_to(&outs[1], &[Sz::C(-1), n, Sz::C(ki), Sz::C(di)], key);
        self.transpose(&y, &[1, 2, 0, 3], key)
    }

    /// The scan without control flow: sequences cut into chunks of `opts.chunk` steps, a
    /// log-depth (Hillis-Steele) scan of the pairs `(exp(dt A), dt u B)` inside every chunk, a
    /// log-depth scan of the chunk-end states across chunks, and one fix-up. Every `Exp` takes
    /// `dt A <= 0`; decays are only ever multiplied, so nothing overflows. State in float32.
    fn scan_chunked<B: Backend>(
        &mut self,
        m: &Ss2d<B>,
        key: &str,
        [u, dt, b, c]: [&str; 4],
        (h, w): &(Sz, Sz),
    ) -> String {
        let (d, s, k) = (m.d_inner, m.d_state, DIRECTIONS);
        let t = self.opts.chunk.max(1) as i64;
        // Sequence length, padding to a multiple of the chunk, and the most chunks to expect.
        let (len, pad, max_chunks) = match (h, w) {
            (Sz::C(h), Sz::C(w)) => {
                let l = h * w;
                let padded = (l + t - 1) / t * t;
                (Sz::C(l), Sz::C(padded - l), padded / t)
            }
            _ => {
                let len = self.dim_of(dt, 2, key);
                let Sz::T(ln) = &len else { unreachable!() };
                let tm1 = self.g.ints1(&[t - 1]);
                let tt = self.g.ints1(&[t]);
                let up = self.g.op("Add", &[ln, &tm1], vec![], key);
                let up = self.g.op("Div", &[&up, &tt], vec![], key);
                let up = self.g.op("Mul", &[&up, &tt], vec![], key);
                let pad = self.g.op("Sub", &[&up, ln], vec![], key);
                let side = (self.opts.max_size / self.cfg.patch_size) as i64;
                let max_l = side * side; // stage 0 is the longest sequence
                (len, Sz::T(pad), (max_l + t - 1) / t)
            }
        };
        let padded = |me: &mut Self, x: &str| -> String {
            if matches!(pad, Sz::C(0)) {
                return x.to_string();
            }
            let pads = me.shape_of(&[
                Sz::C(0),
                Sz::C(0),
                Sz::C(0),
                Sz::C(0),
                Sz::C(0),
                Sz::C(0),
                pad.clone(),
                Sz::C(0),
            ]);
            let zero = me.g.floats(&[], &[0.0]);
            me.g.op("Pad", &[x, &pads, &zero], vec![], key)
        };
        let chunked = |me: &mut Self, x: &str, width: usize| -> String {
            let x = padded(me, x);
            me.reshape(&x, &[0, 0, -1, t, width as i64], key)
        };
        let u5 = chunked(self, u, d);
        let dt5 = chunked(self, dt, d);
        let b5 = chunked(self, b, s);
        let c5 = chunked(self, c, s);
        let a_w = self
            .g
            .weight(&format!("{key}.A"), &[k, 1, 1, d, s], a_matrix(m));
        // Peak memory: every intermediate below is (N, K', nc, T, D', S) float32. When the
        // whole tensor would pass `chunk_group_bytes`, the scan runs one direction and one
        // channel slice at a time (runtimes execute the groups one after another and free each
        // group's intermediates before the next).
        let per_channel = (max_chunks * t) as usize * s * 4;
        let budget = self.opts.chunk_group_bytes.max(1);
        let y = if k * d * per_channel <= budget {
            self.chunk_core([&u5, &dt5, &b5, &c5], &a_w, t, max_chunks, key)
        } else {
            let groups = (d * per_channel).div_ceil(budget).min(d);
            let mut per_direction = Vec::with_capacity(k);
            for ki in 0..k as i64 {
                let pick = |me: &mut Self, x: &str| me.slice(x, 1, ki, ki + 1, key);
                let (uk, dtk, bk, ck) = (
                    pick(self, &u5),
                    pick(self, &dt5),
                    pick(self, &b5),
                    pick(self, &c5),
                );
                let ak = self.slice(&a_w, 0, ki, ki + 1, key);
                let mut parts = Vec::with_capacity(groups);
                for g in 0..groups {
                    let (d0, d1) = ((g * d / groups) as i64, ((g + 1) * d / groups) as i64);
                    let ug = self.slice(&uk, 4, d0, d1, key);
                    let dtg = self.slice(&dtk, 4, d0, d1, key);
                    let ag = self.slice(&ak, 3, d0, d1, key);
                    parts.push(self.chunk_core([&ug, &dtg, &bk, &ck], &ag, t, max_chunks, key));
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                per_direction.push(if groups == 1 {
                    parts[0].clone()
                } else {
                    self.concat(&refs, 4, key)
                });
            }
            let refs: Vec<&str> = per_direction.iter().map(String::as_str).collect();
            self.concat(&refs, 1, key)
        };
        let y = self.reshape(&y, &[0, 0, -1, d as i64], key); // (N, K, L', D)
        match (&pad, &len) {
            (Sz::C(0), _) => y,
            (_, Sz::C(l)) => self.slice(&y, 2, 0, *l, key),
            (_, Sz::T(l)) => {
                let st = self.g.ints1(&[0]);
                let ax = self.g.ints1(&[2]);
                self.g.op("Slice", &[&y, &st, l, &ax], vec![], key)
            }
        }
    }

    /// The chunked scan of `u`, `dt` `(N, K', nc, T, D')` with `B`, `C` `(N, K', nc, T, S)` and
    /// `A` `(K', 1, 1, D', S)`: `y` `(N, K', nc, T, D')`.
    fn chunk_core(
        &mut self,
        [u5, dt5, b5, c5]: [&str; 4],
        a_w: &str,
        t: i64,
        max_chunks: i64,
        key: &str,
    ) -> String {
        let dt6 = self.unsqueeze(dt5, 5, key); // (N, K, nc, T, D, 1)
        let da = self.g.op("Mul", &[&dt6, a_w], vec![], key);
        let mut decay = self.g.op("Exp", &[&da], vec![], key); // (N, K, nc, T, D, S), <= 1
        let dtu = self.g.op("Mul", &[dt5, u5], vec![], key);
        let dtu = self.unsqueeze(&dtu, 5, key);
        let b6 = self.unsqueeze(b5, 4, key);
        let mut state = self.g.op("Mul", &[&dtu, &b6], vec![], key);
        // Inside chunks.
        (decay, state) = self.log_depth_scan(&decay, &state, 3, t, key);
        // Across chunks: the state entering chunk j is the scanned end state of chunk j - 1.
        if max_chunks > 1 {
            let end_decay = self.slice(&decay, 3, t - 1, t, key);
            let end_state = self.slice(&state, 3, t - 1, t, key);
            let (_, end_state) = self.log_depth_scan(&end_decay, &end_state, 2, max_chunks, key);
            let entering = self.shift(&end_state, 6, 2, 1, 0.0, key);
            let carried = self.g.op("Mul", &[&decay, &entering], vec![], key);
            state = self.g.op("Add", &[&state, &carried], vec![], key);
        }
        let c6 = self.unsqueeze(c5, 4, key);
        let hc = self.g.op("Mul", &[&state, &c6], vec![], key);
        let ax5 = self.g.ints1(&[5]);
        self.g.op(
            "ReduceSum",
            &[&hc, &ax5],
            vec![("keepdims", Attr::Int(0))],
            key,
        )
    }
}

/// `A = -exp(A_logs)`, `(K D, S)` row-major.
fn a_matrix<B: Backend>(m: &Ss2d<B>) -> Vec<f32> {
    data(m.a_logs.val()).1.iter().map(|v| -v.exp()).collect()
}

fn scan_dims(h: i64, w: i64) -> CrossScanDims {
    CrossScanDims {
        batch: 1,
        height: h as usize,
        width: w as usize,
        channels: 1,
        d_state: 1,
        dt_rank: 1,
    }
}
/// `unroll` scan steps for all directions: `h = exp(dt A) h + (dt u) B`, `y = sum_s h C`, with
/// the state `(1, N, K, S, D)` (channels innermost, so every op runs along contiguous channels
/// and the sum over states adds whole rows). Everything that does not depend on the previous
/// state is done once per iteration for all its steps: the decays with one `Mul` + `Exp`, the
/// inputs with one `Mul`, the outputs of every step's state with one `Mul` + `ReduceSum`. Per
/// step only one `Mul` and one `Add` remain: ONNX Runtime pays per node far more than one step's
/// arithmetic. (No batched `MatMul` for the outputs: tract 0.23 hangs on one inside a `Scan`.)
fn scan_body<B: Backend>(
    m: &Ss2d<B>,
    key: &str,
    k: usize,
    d: usize,
    s: usize,
    unroll: usize,
) -> GraphProto {
    let mut g = Graph::new(&format!("{key}.scan"));
    // A as (K, S, D).
    let a_ksd = {
        let a = a_matrix(m);
        let mut t = vec![0.0; a.len()];
        for kd in 0..k * d {
            for j in 0..s {
                t[(kd / d * s + j) * d + kd % d] = a[kd * s + j];
            }
        }
        t
    };
    let a = g.weight(&format!("{key}.A"), &[k, s, d], a_ksd);
    let f = Dim::Fixed;
    let state = || vec![f(1), Dim::Any, f(k), f(s), f(d)];
    let inputs = [
        ("h_in", state()),
        ("dt_t", vec![f(unroll), Dim::Any, f(k), f(1), f(d)]),
        ("dtu_t", vec![f(unroll), Dim::Any, f(k), f(1), f(d)]),
        ("b_t", vec![f(unroll), Dim::Any, f(k), f(s), f(1)]),
        ("c_t", vec![f(unroll), Dim::Any, f(k), f(s), f(1)]),
    ];
    for (n, dm) in &inputs {
        g.add_input(value_info(n, dm));
    }
    // (U, N, K, S, D) decays and inputs of every step of this iteration.
    let da = g.op("Mul", &["dt_t", &a], vec![], "step");
    let decay = g.op("Exp", &[&da], vec![], "step");
    let input = g.op("Mul", &["dtu_t", "b_t"], vec![], "step");
    let per_step = |g: &mut Graph, x: &str| -> Vec<String> {
        if unroll == 1 {
            return vec![x.to_string()];
        }
        let split = g.ints1(&vec![1; unroll]);
        g.node(
            "Split",
            &[x, &split],
            vec![("axis", Attr::Int(0))],
            "step",
            unroll,
        )
    };
    let decays = per_step(&mut g, &decay);
    let inputs = per_step(&mut g, &input);
    let mut h = "h_in".to_string();
    let mut hs = Vec::with_capacity(unroll);
    for (decay, input) in decays.iter().zip(&inputs) {
        let hd = g.op("Mul", &[decay, &h], vec![], "step");
        h = g.op("Add", &[&hd, input], vec![], "step");
        hs.push(h.clone());
    }
    let hs = if unroll == 1 {
        h.clone()
    } else {
        let refs: Vec<&str> = hs.iter().map(String::as_str).collect();
        g.op("Concat", &refs, vec![("axis", Attr::Int(0))], "step")
    };
    // Every step's output: sum over S of h C, (U, N, K, D).
    let hc = g.op("Mul", &[&hs, "c_t"], vec![], "step");
    let ax3 = g.ints1(&[3]);
    let y = g.op(
        "ReduceSum",
        &[&hc, &ax3],
        vec![("keepdims", Attr::Int(0))],
        "step",
    );
    g.add_output(value_info(&h, &state()));
    g.add_output(value_info(&y, &[f(unroll), Dim::Any, f(k), f(d)]));
    g.into_proto()
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
