//! The selective scan as one ONNX `Scan` loop over the sequence (the default form).

use burn::tensor::backend::Backend;
use vmunet_model::Ss2d;
use vmunet_onnx_ir::pb::GraphProto;
use vmunet_onnx_ir::{Attr, Dim, Graph};
use vmunet_scan::DIRECTIONS;

use super::weights::a_matrix;
use super::{value_info, F32Graph, Lower, Sz};

impl Lower<'_> {
    /// The scan as one ONNX `Scan` over the sequence, all four directions in one loop
    /// (state `(N, K, S, D)`, float32). The body uses elementwise ops + `ReduceSum` only.
    pub(super) fn scan_loop<B: Backend>(
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
