//! SS2D: input projection, depthwise conv, the four-direction selective scan in the form the
//! export options ask for, output norm, gate and projection.

use burn::tensor::backend::Backend;
use vmunet_model::Ss2d;
use vmunet_onnx_ir::Attr;
use vmunet_scan::DIRECTIONS;

use super::{data, F32Graph, Lower, Sz};
use crate::ScanForm;

impl Lower<'_> {
    /// SS2D. The selective scan is written as the export options say: an ONNX `Scan` loop,
    /// a chunked log-depth scan without control flow, or the `ai.vmunet` custom operator.
    pub(super) fn ss2d<B: Backend>(
        &mut self,
        x: &str,
        m: &Ss2d<B>,
        key: &str,
        hw: &(Sz, Sz),
    ) -> String {
        let di = m.d_inner as i64;
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
        let y = if self.opts.scan == ScanForm::Custom {
            self.selective_scan_custom(&u, m, key)
        } else {
            self.selective_scan_standard(&u, m, key, hw)
        };
        let y = self.layer_norm(&y, &m.out_norm, &format!("{key}.out_norm"));
        let gate = self.silu(z, key);
        let y = self.g.op("Mul", &[&y, &gate], vec![], key);
        self.linear(&y, &m.out_proj, &format!("{key}.out_proj"))
    }

    /// The selective scan of `u` `(N, h, w, D)` in standard operators: each direction's
    /// sequence, its projections, `delta`, the scan ([`ScanForm::Loop`] or
    /// [`ScanForm::Chunked`]), back to row-major summed over the directions, plus the D skip.
    fn selective_scan_standard<B: Backend>(
        &mut self,
        u: &str,
        m: &Ss2d<B>,
        key: &str,
        hw: &(Sz, Sz),
    ) -> String {
        let (d, r, s, k) = (m.d_inner, m.dt_rank, m.d_state, DIRECTIONS);
        let p = r + 2 * s;
        let (wd, wv) = data(m.x_proj_weight.val()); // (K, P, D)
        let (_, dtw) = data(m.dt_projs_weight.val()); // (K, D, R)
        let (_, bias) = data(m.dt_projs_bias.val()); // (K, D)
        let (_, ds) = data(m.ds.val()); // (K D)
        let u_seq = self.scan_order(u, d, hw, key); // (N, K, L, D)
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
        let skip = self.g.op("Mul", &[u, &dsum], vec![], key);
        self.g.op("Add", &[&y, &skip], vec![], key)
    }
}
