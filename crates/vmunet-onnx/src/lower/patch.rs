//! Patch embedding (stem), patch merging (encoder down-sampling) and patch expanding (decoder
//! up-sampling).

use burn::tensor::backend::Backend;
use vmunet_model::{PatchEmbed2D, PatchExpand2D, PatchMerging2D};

use super::{Lower, Sz};

impl Lower<'_> {
    /// The stem: patch conv (N, C, H, W) -> channels-last (N, H/p, W/p, C'), then layer norm.
    pub(super) fn patch_embed<B: Backend>(&mut self, x: &str, m: &PatchEmbed2D<B>) -> String {
        let y = self.conv(x, &m.proj, "patch_embed.proj");
        let y = self.transpose(&y, &[0, 2, 3, 1], "patch_embed");
        self.layer_norm(&y, &m.norm, "patch_embed.norm")
    }

    /// (N, h, w, C) -> (N, h/2, w/2, 2C).
    pub(super) fn merging<B: Backend>(
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
    pub(super) fn expand<B: Backend>(
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
}
