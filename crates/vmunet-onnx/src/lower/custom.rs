//! The selective scan as one `ai.vmunet::SelectiveScan` node (the project's runtimes implement
//! it; [`crate::CUSTOM_OP`] documents its inputs).

use burn::tensor::backend::Backend;
use vmunet_model::Ss2d;
use vmunet_scan::DIRECTIONS;

use super::weights::a_matrix;
use super::{data, F32Graph, Lower};
use crate::{CUSTOM_DOMAIN, CUSTOM_OP};

impl Lower<'_> {
    /// The custom node over `u` `(N, h, w, D)`: the projections `x_dbl` and `delta` before bias
    /// and softplus are computed in the graph, the rest inside the operator.
    pub(super) fn selective_scan_custom<B: Backend>(
        &mut self,
        u: &str,
        m: &Ss2d<B>,
        key: &str,
    ) -> String {
        let (d, r, s, k) = (m.d_inner, m.dt_rank, m.d_state, DIRECTIONS);
        let p = r + 2 * s;
        let (di, ki) = (d as i64, k as i64);
        let (wd, wv) = data(m.x_proj_weight.val()); // (K, P, D)
        let (_, dtw) = data(m.dt_projs_weight.val()); // (K, D, R)
        let (_, bias) = data(m.dt_projs_bias.val()); // (K, D)
        let (_, ds) = data(m.ds.val()); // (K D)
                                        // x_dbl = u @ W (D, K P): every direction's projections at every position.
        let mut wt = vec![0f32; d * k * p];
        for (i, w) in wt.iter_mut().enumerate() {
            let (dd, kk, pp) = (i / (k * p), (i / p) % k, i % p);
            *w = wv[(kk * wd[1] + pp) * wd[2] + dd];
        }
        let wproj = self
            .g
            .weight(&format!("{key}.x_proj_weight"), &[d, k * p], wt);
        let uf = self.reshape(u, &[0, -1, di], key);
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
            &[u, &delta, &x_dbl, &a, &dsw, &bias],
            key,
        )
    }
}
