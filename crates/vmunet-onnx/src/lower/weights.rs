//! SS2D weights in the layouts the scan formulations use.

use burn::tensor::backend::Backend;
use vmunet_model::Ss2d;

use super::{data, F32Graph, Lower};

impl Lower<'_> {
    /// `dt_projs_weight` (K, D, R) as the (K, R, D) right operand of a batched MatMul.
    pub(super) fn dt_weight(
        &mut self,
        key: &str,
        dtw: &[f32],
        k: usize,
        d: usize,
        r: usize,
    ) -> String {
        let mut t = vec![0f32; k * r * d];
        for (i, w) in t.iter_mut().enumerate() {
            let (kk, rr, dd) = (i / (r * d), (i / d) % r, i % d);
            *w = dtw[(kk * d + dd) * r + rr];
        }
        self.g
            .weight(&format!("{key}.dt_projs_weight"), &[k, r, d], t)
    }
}

/// `A = -exp(A_logs)`, `(K D, S)` row-major.
pub(super) fn a_matrix<B: Backend>(m: &Ss2d<B>) -> Vec<f32> {
    data(m.a_logs.val()).1.iter().map(|v| -v.exp()).collect()
}
