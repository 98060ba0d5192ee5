//! The selective scan without control flow: chunked log-depth (Hillis-Steele) scans.

use burn::tensor::backend::Backend;
use vmunet_model::Ss2d;
use vmunet_onnx_ir::Attr;
use vmunet_scan::DIRECTIONS;

use super::weights::a_matrix;
use super::{F32Graph, Lower, Sz};

impl Lower<'_> {
    /// The scan without control flow: sequences cut into chunks of `opts.chunk` steps, a
    /// log-depth (Hillis-Steele) scan of the pairs `(exp(dt A), dt u B)` inside every chunk, a
    /// log-depth scan of the chunk-end states across chunks, and one fix-up. Every `Exp` takes
    /// `dt A <= 0`; decays are only ever multiplied, so nothing overflows. State in float32.
    pub(super) fn scan_chunked<B: Backend>(
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
}
