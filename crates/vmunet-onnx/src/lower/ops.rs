//! Generic graph helpers: parameters, reshapes and transposes, `Linear`, `LayerNorm`, `Conv2d`,
//! shapes known or computed, slices, flips, concatenation, shifts.

use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::{backend::Backend, Tensor};
use vmunet_onnx_ir::Attr;

use super::{data, F32Graph, Lower, Sz};

impl Lower<'_> {
    /// A parameter tensor as a float32 initializer named `key`.
    pub(super) fn param<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        t: Tensor<B, D>,
    ) -> String {
        let (dims, v) = data(t);
        self.g.weight(key, &dims, v)
    }

    /// `Reshape` to a fixed shape (`0` keeps a dimension, `-1` infers one).
    pub(super) fn reshape(&mut self, x: &str, shape: &[i64], hint: &str) -> String {
        let s = self.g.ints1(shape);
        self.g.op("Reshape", &[x, &s], vec![], hint)
    }

    /// `Transpose` by `perm`.
    pub(super) fn transpose(&mut self, x: &str, perm: &[i64], hint: &str) -> String {
        self.g.op(
            "Transpose",
            &[x],
            vec![("perm", Attr::Ints(perm.to_vec()))],
            hint,
        )
    }

    /// `x * sigmoid(x)`.
    pub(super) fn silu(&mut self, x: &str, hint: &str) -> String {
        let s = self.g.op("Sigmoid", &[x], vec![], hint);
        self.g.op("Mul", &[x, &s], vec![], hint)
    }

    /// `Linear`: MatMul with the (in, out) weight, plus bias.
    pub(super) fn linear<B: Backend>(&mut self, x: &str, m: &Linear<B>, key: &str) -> String {
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
    pub(super) fn layer_norm<B: Backend>(
        &mut self,
        x: &str,
        m: &LayerNorm<B>,
        key: &str,
    ) -> String {
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

    /// `Conv2d` (NCHW) with its padding, stride and groups.
    pub(super) fn conv<B: Backend>(&mut self, x: &str, m: &Conv2d<B>, key: &str) -> String {
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
    pub(super) fn shape_of(&mut self, parts: &[Sz]) -> String {
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

    /// `Reshape` to a shape of fixed and computed parts.
    pub(super) fn reshape_to(&mut self, x: &str, parts: &[Sz], hint: &str) -> String {
        let s = self.shape_of(parts);
        self.g.op("Reshape", &[x, &s], vec![], hint)
    }

    /// Size of `axis` of `x`, as a graph value.
    pub(super) fn dim_of(&mut self, x: &str, axis: i64, hint: &str) -> Sz {
        let shape = self.g.op("Shape", &[x], vec![], hint);
        let st = self.g.ints1(&[axis]);
        let en = self.g.ints1(&[axis + 1]);
        Sz::T(self.g.op("Slice", &[&shape, &st, &en], vec![], hint))
    }

    /// `s * mul / div`, folded when `s` is known.
    pub(super) fn scale(&mut self, s: &Sz, mul: i64, div: i64, hint: &str) -> Sz {
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

    /// `x[from..to]` along `axis`.
    pub(super) fn slice(&mut self, x: &str, axis: i64, from: i64, to: i64, hint: &str) -> String {
        let st = self.g.ints1(&[from]);
        let en = self.g.ints1(&[to]);
        let ax = self.g.ints1(&[axis]);
        self.g.op("Slice", &[x, &st, &en, &ax], vec![], hint)
    }

    /// Reverses `axis`.
    pub(super) fn flip(&mut self, x: &str, axis: i64, hint: &str) -> String {
        let st = self.g.ints1(&[-1]);
        let en = self.g.ints1(&[i64::MIN]);
        let ax = self.g.ints1(&[axis]);
        let step = self.g.ints1(&[-1]);
        self.g.op("Slice", &[x, &st, &en, &ax, &step], vec![], hint)
    }

    /// `Unsqueeze` at `axis`.
    pub(super) fn unsqueeze(&mut self, x: &str, axis: i64, hint: &str) -> String {
        let ax = self.g.ints1(&[axis]);
        self.g.op("Unsqueeze", &[x, &ax], vec![], hint)
    }

    /// `Concat` along `axis`.
    pub(super) fn concat(&mut self, xs: &[&str], axis: i64, hint: &str) -> String {
        self.g
            .op("Concat", xs, vec![("axis", Attr::Int(axis))], hint)
    }

    /// Shifts `x` by `by` along `axis` of a rank-`rank` tensor, filling with `fill`
    /// (`y[t] = x[t - by]`).
    pub(super) fn shift(
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
}
