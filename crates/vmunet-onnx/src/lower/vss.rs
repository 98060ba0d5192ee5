//! The VSS block: layer norm, SS2D, residual.

use burn::tensor::backend::Backend;
use vmunet_model::VssBlock;

use super::{Lower, Sz};

impl Lower<'_> {
    /// A VSS block: `x + SS2D(LN(x))`.
    pub(super) fn block<B: Backend>(
        &mut self,
        x: &str,
        m: &VssBlock<B>,
        key: &str,
        hw: &(Sz, Sz),
    ) -> String {
        let y = self.layer_norm(x, &m.ln_1, &format!("{key}.ln_1"));
        let y = self.ss2d(&y, &m.self_attention, &format!("{key}.self_attention"), hw);
        self.g.op("Add", &[x, &y], vec![], key)
    }
}
