//! The four scan directions: a feature map as each direction's sequence and back
//! ([`vmunet_scan::position`]).

use vmunet_onnx_ir::Attr;
use vmunet_scan::{position, CrossScanDims, DIRECTIONS};

use super::{Lower, Sz};

impl Lower<'_> {
    /// (N, h, w, X) -> (N, K, L, X): each direction's sequence in its scan order
    /// ([`vmunet_scan::position`]). Fixed sizes use one `Gather`; dynamic ones transposes and
    /// reversals.
    pub(super) fn scan_order(&mut self, u: &str, x: usize, (h, w): &(Sz, Sz), key: &str) -> String {
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
    pub(super) fn row_major(&mut self, y: &str, d: usize, (h, w): &(Sz, Sz), key: &str) -> String {
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
}

/// The scan geometry of an `h` x `w` map (one channel: only positions are used).
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
