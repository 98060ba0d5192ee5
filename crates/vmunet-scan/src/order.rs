//! SS2D's four scan orders over an `H x W` map: the one definition the host kernels, the
//! reference composition and the ONNX export share (the CubeCL kernel mirrors it). Uses only
//! [`crate::dims`].

use crate::dims::CrossScanDims;

/// Number of scan orders.
pub const DIRECTIONS: usize = 4;

/// Row-major position visited at step `t` of direction `k` (0: row-major, 1: column-major,
/// 2 and 3: their reverses). The one definition of SS2D's scan orders; the ONNX export uses it.
#[inline(always)]
pub fn position(k: usize, t: usize, dims: &CrossScanDims) -> usize {
    let l = dims.len();
    let t = if k >= 2 { l - 1 - t } else { t };
    if k % 2 == 1 {
        // Column-major order: t = w * H + h.
        (t % dims.height) * dims.width + t / dims.height
    } else {
        t
    }
}
