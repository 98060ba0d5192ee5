//! Seeded training augmentations and scipy-style zoom.
//!
//! Every random choice comes from one `StdRng` seeded with a `u64`, so a training run that
//! derives the seed from `(seed, epoch, index)` with [`sample_seed`] repeats exactly and can
//! resume mid-run.
//!
//! - ISIC ([`augment_isic`]): the official VM-UNet train transforms
//!   (`myRandomHorizontalFlip`, `myRandomVerticalFlip`, `myRandomRotation`, `myResize`).
//! - Synapse ([`augment_synapse`]): TransUNet's `RandomGenerator` (rot90/flip or a small
//!   rotation, then [`zoom`] to the model size).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dataset::Sample;
use crate::resize_bilinear;

/// Mixes a run seed, an epoch and a sample index into one per-sample seed (SplitMix64).
pub fn sample_seed(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut h = splitmix(seed);
    h = splitmix(h ^ epoch);
    splitmix(h ^ index)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reverses each row of every `h x w` plane (CHW): a left-right flip.
pub fn flip_horizontal(data: &mut [f32], h: usize, w: usize) {
    if h * w == 0 {
        return;
    }
    for plane in data.chunks_exact_mut(h * w) {
        for row in plane.chunks_exact_mut(w) {
            row.reverse();
        }
    }
}

/// Reverses the row order of every `h x w` plane (CHW): an up-down flip.
pub fn flip_vertical(data: &mut [f32], h: usize, w: usize) {
    if h * w == 0 {
        return;
    }
    for plane in data.chunks_exact_mut(h * w) {
        for y in 0..h / 2 {
            let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}

/// `np.rot90(plane, k)` for every `h x w` plane: `k` quarter turns counter-clockwise.
/// Returns the data and its new `(height, width)` (swapped for odd `k`).
pub fn rot90(data: &[f32], h: usize, w: usize, k: usize) -> (Vec<f32>, usize, usize) {
    let k = k % 4;
    let (oh, ow) = if k % 2 == 1 { (w, h) } else { (h, w) };
    if h * w == 0 || k == 0 {
        return (data.to_vec(), oh, ow);
    }
    let mut out = vec![0f32; data.len()];
    for (src, dst) in data.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for i in 0..oh {
            for j in 0..ow {
                let (y, x) = match k {
                    1 => (j, w - 1 - i),
                    2 => (h - 1 - i, w - 1 - j),
                    _ => (h - 1 - j, i),
                };
                dst[i * ow + j] = src[y * w + x];
            }
        }
    }
    (out, oh, ow)
}

/// Whose nearest-neighbour rotation to reproduce; they differ only at the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// torchvision `TF.rotate` (ISIC): round half to even, a pixel is inside when its
    /// rounded source index is.
    Torchvision,
    /// `scipy.ndimage.rotate(order=0, reshape=False)` (Synapse): round half up, a pixel is
    /// inside when its source coordinate lies in `[0, n - 1]`; bit-exact with scipy.
    Scipy,
}

/// For each output pixel of an `h x w` plane rotated by `angle` degrees counter-clockwise
/// about the centre `((h-1)/2, (w-1)/2)`, the nearest source pixel, or `None` outside.
fn rotation_map(h: usize, w: usize, angle: f64, conv: Convention) -> Vec<Option<usize>> {
    let (s, c) = exact_sin_cos(angle);
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (hf, wf) = (h as f64, w as f64);
    // scipy's affine_transform arithmetic: coordinate = matrix @ out + offset.
    let (off_r, off_c) = (cy - (c * cy + s * cx), cx - (-s * cy + c * cx));
    let mut map = Vec::with_capacity(h * w);
    for i in 0..h {
        let (fi, y) = (i as f64, i as f64 - cy);
        for j in 0..w {
            let (fj, x) = (j as f64, j as f64 - cx);
            let src = match conv {
                Convention::Scipy => {
                    let fy = c * fi + s * fj + off_r;
                    let fx = -s * fi + c * fj + off_c;
                    let inside = fy >= 0.0 && fx >= 0.0 && fy <= hf - 1.0 && fx <= wf - 1.0;
                    inside.then(|| ((fy + 0.5).floor(), (fx + 0.5).floor()))
                }
                Convention::Torchvision => {
                    let sy = (s * x + c * y + cy).round_ties_even();
                    let sx = (c * x - s * y + cx).round_ties_even();
                    let inside = sy >= 0.0 && sx >= 0.0 && sy < hf && sx < wf;
                    inside.then_some((sy, sx))
                }
            };
            map.push(src.map(|(sy, sx)| (sy as usize).min(h - 1) * w + (sx as usize).min(w - 1)));
        }
    }
    map
}

/// sin and cos of an angle in degrees, exact at multiples of 90 (like scipy's `sindg`).
fn exact_sin_cos(angle: f64) -> (f64, f64) {
    let a = angle.rem_euclid(360.0);
    if a == 0.0 {
        (0.0, 1.0)
    } else if a == 90.0 {
        (1.0, 0.0)
    } else if a == 180.0 {
        (0.0, -1.0)
    } else if a == 270.0 {
        (-1.0, 0.0)
    } else {
        a.to_radians().sin_cos()
    }
}

/// Rotates every `h x w` plane by `angle` degrees counter-clockwise (as displayed, row 0 at
/// the top) about the image centre, nearest-neighbour sampling, same size, `0` outside the
/// source: torchvision `TF.rotate` with its defaults or
/// `scipy.ndimage.rotate(order=0, reshape=False)`, per `conv`.
pub fn rotate_nearest(data: &[f32], h: usize, w: usize, angle: f64, conv: Convention) -> Vec<f32> {
    let map = rotation_map(h, w, angle, conv);
    apply_map(data, h * w, &map)
}

fn apply_map(data: &[f32], plane: usize, map: &[Option<usize>]) -> Vec<f32> {
    if plane == 0 {
        return data.to_vec();
    }
    let mut out = vec![0f32; data.len()];
    for (src, dst) in data.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for (o, m) in dst.iter_mut().zip(map) {
            if let Some(k) = m {
                *o = src[*k];
            }
        }
    }
    out
}

fn rotate_sample(s: &mut Sample, angle: f64, conv: Convention) {
    let map = rotation_map(s.height, s.width, angle, conv);
    s.image = apply_map(&s.image, s.height * s.width, &map);
    s.mask = apply_map(&s.mask, s.height * s.width, &map);
}

/// The official VM-UNet ISIC train augmentation, seeded: horizontal flip (p = 0.5), vertical
/// flip (p = 0.5), rotation (p = 0.5) by an angle uniform in [0, 360) about the centre with
/// nearest-neighbour sampling and fill 0 (image and mask alike, same angle). The mask stays
/// binary. The official pipeline resizes last (`myResize`); samples from
/// [`crate::IsicDataset`] are already at model size, so that step is the identity (use
/// [`resize_isic_sample`] for others).
///
/// Difference from the official code: `myRandomRotation` draws its angle once, in
/// `__init__`, and rotates every sample of the run by that same angle (a known bug); here
/// each call draws a new angle.
pub fn augment_isic(sample: &mut Sample, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (h, w) = (sample.height, sample.width);
    if rng.random::<f64>() < 0.5 {
        flip_horizontal(&mut sample.image, h, w);
        flip_horizontal(&mut sample.mask, h, w);
    }
    if rng.random::<f64>() < 0.5 {
        flip_vertical(&mut sample.image, h, w);
        flip_vertical(&mut sample.mask, h, w);
    }
    // Always drawn, so the stream does not depend on the coin.
    let rotate = rng.random::<f64>() < 0.5;
    let angle = rng.random_range(0.0..360.0);
    if rotate {
        rotate_sample(sample, angle, Convention::Torchvision);
    }
}

/// Spline order of [`zoom`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoomOrder {
    /// Order 0: nearest neighbour (labels).
    Nearest,
    /// Order 3: cubic B-spline with the prefilter (images).
    Cubic,
}

/// `scipy.ndimage.zoom(plane, (out_h / h, out_w / w), order)` for one `h x w` plane with
/// scipy's defaults (`mode='constant'`, `cval=0`, `grid_mode=False`, `prefilter=True`):
/// output pixel `i` samples source coordinate `i * ((n - 1) / (n_out - 1))`, so corners map
/// to corners. Cubic uses the exact B-spline prefilter with mirror boundaries, in f64.
///
/// Matches scipy 1.17 to float32 rounding, including its quirk: when that product rounds
/// to just above `n - 1` (e.g. 512 -> 224, the Synapse evaluation) the last row/column is
/// outside the input and becomes 0.
///
/// Panics if `data.len() != h * w` (a caller bug, like [`crate::resize_bilinear`]).
pub fn zoom(
    data: &[f32],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    order: ZoomOrder,
) -> Vec<f32> {
    assert_eq!(data.len(), h * w, "zoom: buffer does not match its shape");
    if out_h * out_w == 0 || h * w == 0 {
        return vec![0.0; out_h * out_w];
    }
    let step = |n: usize, m: usize| {
        if m > 1 {
            (n as f64 - 1.0) / (m as f64 - 1.0)
        } else {
            1.0
        }
    };
    let (zy, zx) = (step(h, out_h), step(w, out_w));
    match order {
        ZoomOrder::Nearest => {
            let near = |i: usize, z: f64, n: usize| {
                let x = i as f64 * z;
                (x >= 0.0 && x <= n as f64 - 1.0).then(|| ((x + 0.5).floor() as usize).min(n - 1))
            };
            let xs: Vec<Option<usize>> = (0..out_w).map(|j| near(j, zx, w)).collect();
            let mut out = vec![0f32; out_h * out_w];
            for (i, dst) in out.chunks_exact_mut(out_w).enumerate() {
                let Some(y) = near(i, zy, h) else { continue };
                let row = &data[y * w..(y + 1) * w];
                for (o, x) in dst.iter_mut().zip(&xs) {
                    if let Some(x) = x {
                        *o = row[*x];
                    }
                }
            }
            out
        }
        ZoomOrder::Cubic => {
            let mut c: Vec<f64> = data.iter().map(|&v| v as f64).collect();
            for row in c.chunks_exact_mut(w) {
                bspline_prefilter(row);
            }
            let mut col = vec![0f64; h];
            for x in 0..w {
                for y in 0..h {
                    col[y] = c[y * w + x];
                }
                bspline_prefilter(&mut col);
                for y in 0..h {
                    c[y * w + x] = col[y];
                }
            }
            let tx = cubic_taps(w, out_w, zx);
            let ty = cubic_taps(h, out_h, zy);
            // Along x for every source row, then along y.
            let mut rows = vec![0f64; h * out_w];
            for y in 0..h {
                let src = &c[y * w..(y + 1) * w];
                for (j, (idx, wt)) in tx.iter().enumerate() {
                    rows[y * out_w + j] = (0..4).map(|k| wt[k] * src[idx[k]]).sum();
                }
            }
            let mut out = vec![0f32; out_h * out_w];
            for (i, (idx, wt)) in ty.iter().enumerate() {
                let dst = &mut out[i * out_w..(i + 1) * out_w];
                for (j, o) in dst.iter_mut().enumerate() {
                    *o = (0..4)
                        .map(|k| wt[k] * rows[idx[k] * out_w + j])
                        .sum::<f64>() as f32;
                }
            }
            out
        }
    }
}

/// Source indices (mirrored) and cubic B-spline weights of each output sample.
fn cubic_taps(n: usize, m: usize, z: f64) -> Vec<([usize; 4], [f64; 4])> {
    (0..m)
        .map(|i| {
            let x = i as f64 * z;
            if x < 0.0 || x > n as f64 - 1.0 {
                return ([0; 4], [0.0; 4]);
            }
            let x0 = x.floor();
            let t = x - x0;
            let start = x0 as isize - 1;
            let idx = [0, 1, 2, 3].map(|k| mirror(start + k, n));
            let t2 = t * t;
            let t3 = t2 * t;
            let wt = [
                (1.0 - t).powi(3) / 6.0,
                (4.0 - 6.0 * t2 + 3.0 * t3) / 6.0,
                (1.0 + 3.0 * t + 3.0 * t2 - 3.0 * t3) / 6.0,
                t3 / 6.0,
            ];
            (idx, wt)
        })
        .collect()
}

/// scipy's `mirror` extension (d c b | a b c d | c b a).
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let i = i.rem_euclid(period);
    (if i >= n as isize { period - i } else { i }) as usize
}

/// In-place cubic B-spline prefilter of one line with mirror boundaries (scipy
/// `spline_filter1d(order=3, mode='mirror')`).
fn bspline_prefilter(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = 3f64.sqrt() - 2.0;
    let lambda = (1.0 - z) * (1.0 - 1.0 / z);
    c.iter_mut().for_each(|v| *v *= lambda);
    // Causal initialisation for a mirror-symmetric extension.
    let z_n_1 = z.powi(n as i32 - 1);
    let mut c0 = c[0] + z_n_1 * c[n - 1];
    let mut z_i = z;
    for i in 1..n - 1 {
        c0 += z_i * (c[i] + z_n_1 * c[n - 1 - i]);
        z_i *= z;
        // Later terms are below f64 resolution (|z|^k < 1e-20): the sum is exact in f64.
        if z_i.abs() < 1e-20 && z_n_1.abs() < 1e-20 {
            break;
        }
    }
    c[0] = c0 / (1.0 - z_n_1 * z_n_1);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// TransUNet's Synapse `RandomGenerator`, seeded: with probability 0.5 a random rot90
/// (`k` in 0..4) followed by a flip along a random axis; otherwise, with probability 0.5, a
/// rotation by an integer angle in [-20, 20) degrees (nearest neighbour, fill 0, same size).
/// Then, when the sample is not `size x size`, [`zoom`] to it: cubic for the image, nearest
/// for the label, so labels stay integer class indices.
///
/// For parity with the official pipeline pass a sample at its native resolution
/// ([`crate::SynapseSlices::get_raw`]); the image must have one channel.
pub fn augment_synapse(sample: &mut Sample, seed: u64, size: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (h, w) = (sample.height, sample.width);
    if rng.random::<f64>() > 0.5 {
        let k = rng.random_range(0..4usize);
        let axis = rng.random_range(0..2usize);
        let (img, oh, ow) = rot90(&sample.image, h, w, k);
        let (msk, _, _) = rot90(&sample.mask, h, w, k);
        sample.image = img;
        sample.mask = msk;
        sample.height = oh;
        sample.width = ow;
        if axis == 0 {
            flip_vertical(&mut sample.image, oh, ow);
            flip_vertical(&mut sample.mask, oh, ow);
        } else {
            flip_horizontal(&mut sample.image, oh, ow);
            flip_horizontal(&mut sample.mask, oh, ow);
        }
    } else if rng.random::<f64>() > 0.5 {
        let angle = rng.random_range(-20..20i32);
        rotate_sample(sample, angle as f64, Convention::Scipy);
    }
    zoom_sample(sample, size, size);
}

/// Zooms a sample to `out_h x out_w` the Synapse way: image cubic ([`ZoomOrder::Cubic`]),
/// mask nearest. A no-op when the size already matches.
pub fn zoom_sample(sample: &mut Sample, out_h: usize, out_w: usize) {
    let (h, w) = (sample.height, sample.width);
    if (h, w) == (out_h, out_w) {
        return;
    }
    let plane = h * w;
    let mut image = Vec::with_capacity(sample.channels * out_h * out_w);
    for c in 0..sample.channels {
        let src = &sample.image[c * plane..(c + 1) * plane];
        image.extend(zoom(src, h, w, out_h, out_w, ZoomOrder::Cubic));
    }
    sample.image = image;
    sample.mask = zoom(&sample.mask, h, w, out_h, out_w, ZoomOrder::Nearest);
    sample.height = out_h;
    sample.width = out_w;
}

/// Resizes an ISIC-style sample bilinearly (image) and re-binarises the mask at 0.5 (the
/// final `myResize` of the official transforms). A no-op when the size already matches.
pub fn resize_isic_sample(sample: &mut Sample, out_h: usize, out_w: usize) {
    let (h, w) = (sample.height, sample.width);
    if (h, w) == (out_h, out_w) {
        return;
    }
    sample.image = resize_bilinear(&sample.image, sample.channels, (h, w), (out_h, out_w));
    sample.mask = resize_bilinear(&sample.mask, 1, (h, w), (out_h, out_w))
        .into_iter()
        .map(|v| if v >= 0.5 { 1.0 } else { 0.0 })
        .collect();
    sample.height = out_h;
    sample.width = out_w;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|v| v as f32).collect()
    }

    fn square_sample(h: usize, w: usize, channels: usize) -> Sample {
        // A bright off-centre rectangle; the mask is exactly that rectangle.
        let mut mask = vec![0f32; h * w];
        for y in h / 5..h / 2 {
            for x in w / 4..(3 * w) / 5 {
                mask[y * w + x] = 1.0;
            }
        }
        let plane: Vec<f32> = mask
            .iter()
            .map(|m| if *m > 0.5 { 250.0 } else { 20.0 })
            .collect();
        Sample {
            name: "sq".into(),
            image: plane.repeat(channels),
            channels,
            height: h,
            width: w,
            mask,
        }
    }

    #[test]
    fn flips_and_rot90_are_exact_permutations() {
        let (h, w) = (3, 5);
        let src = ramp(2 * h * w);
        let mut a = src.clone();
        flip_horizontal(&mut a, h, w);
        assert_eq!(&a[..5], &[4.0, 3.0, 2.0, 1.0, 0.0]);
        flip_horizontal(&mut a, h, w);
        assert_eq!(a, src);
        flip_vertical(&mut a, h, w);
        assert_eq!(&a[..5], &[10.0, 11.0, 12.0, 13.0, 14.0]);
        assert_eq!(&a[15..20], &[25.0, 26.0, 27.0, 28.0, 29.0]);
        flip_vertical(&mut a, h, w);
        assert_eq!(a, src);
        // np.rot90(np.arange(15).reshape(3, 5)) == [[4,9,14],[3,8,13],[2,7,12],[1,6,11],[0,5,10]]
        let (r, rh, rw) = rot90(&src, h, w, 1);
        assert_eq!((rh, rw), (5, 3));
        assert_eq!(&r[..6], &[4.0, 9.0, 14.0, 3.0, 8.0, 13.0]);
        assert_eq!(&r[12..15], &[0.0, 5.0, 10.0]);
        for k in 0..4 {
            let (r, rh, rw) = rot90(&src, h, w, k);
            let mut sorted = r.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, src, "rot90 k={k} is a permutation");
            let (back, bh, bw) = rot90(&r, rh, rw, 4 - k);
            assert_eq!((back, bh, bw), (src.clone(), h, w));
        }
        // Rotation by 90 degrees with nearest sampling equals rot90 on a square.
        let sq = ramp(6 * 6);
        assert_eq!(
            rotate_nearest(&sq, 6, 6, 90.0, Convention::Scipy),
            rot90(&sq, 6, 6, 1).0
        );
        assert_eq!(
            rotate_nearest(&sq, 6, 6, 180.0, Convention::Torchvision),
            rot90(&sq, 6, 6, 2).0
        );
        assert_eq!(rotate_nearest(&sq, 6, 6, 0.0, Convention::Scipy), sq);
    }

    #[test]
    fn rotation_matches_scipy_order0() {
        // scipy.ndimage.rotate(np.arange(30.).reshape(5, 6), 17, order=0, reshape=False)
        let want: [f32; 30] = [
            0., 0., 0., 4., 11., 0., 0., 7., 8., 9., 10., 0., 6., 13., 14., 15., 16., 23., 0., 19.,
            20., 21., 22., 29., 0., 18., 25., 0., 0., 0.,
        ];
        assert_eq!(
            rotate_nearest(&ramp(30), 5, 6, 17.0, Convention::Scipy),
            want
        );
        // torchvision keeps border pixels whose source rounds inside.
        let tv = rotate_nearest(&ramp(30), 5, 6, 17.0, Convention::Torchvision);
        assert_eq!(&tv[..6], &[0., 2., 3., 4., 11., 11.]);
    }

    #[test]
    fn zoom_matches_scipy() {
        // scipy.ndimage.zoom(a, (7/5, 4/6), order=3) for a = np.arange(30.).reshape(5, 6) ** 1.5
        let a: Vec<f32> = (0..30).map(|v| (v as f32).powf(1.5)).collect();
        let got = zoom(&a, 5, 6, 7, 4, ZoomOrder::Cubic);
        let want: [f32; 28] = [
            0.0, 2.151395, 5.984656, 11.18034, 7.292477, 12.04408, 17.71813, 24.56995, 23.20865,
            31.07823, 39.11844, 48.16392, 41.56922, 50.6622, 59.87003, 70.0928, 61.97458, 72.26693,
            82.57028, 93.89332, 94.47157, 106.2551, 117.897, 130.5665, 117.5755, 130.2314,
            142.6794, 156.1698,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs() + 1e-5, "{got:?}");
        }
        // order=0 back to a different size.
        let got = zoom(&ramp(30), 5, 6, 3, 8, ZoomOrder::Nearest);
        let want: [f32; 24] = [
            0., 1., 1., 2., 3., 4., 4., 5., 12., 13., 13., 14., 15., 16., 16., 17., 24., 25., 25.,
            26., 27., 28., 28., 29.,
        ];
        assert_eq!(got, want);
        // scipy's edge quirk at 512 -> 224: 223 * (511 / 223) > 511, so the last row and
        // column fall outside and read 0.
        let z = zoom(&vec![1.0; 512 * 512], 512, 512, 224, 224, ZoomOrder::Cubic);
        assert!(z[223 * 224..].iter().all(|v| *v == 0.0));
        assert!((0..223).all(|y| z[y * 224 + 223] == 0.0 && (z[y * 224] - 1.0).abs() < 1e-6));
        // Identity and constant planes.
        // Same size: scipy still filters and resamples, which reproduces the input.
        for (g, w) in zoom(&a, 5, 6, 5, 6, ZoomOrder::Cubic).iter().zip(&a) {
            assert!((g - w).abs() < 1e-4, "{g} {w}");
        }
        for v in zoom(&[3.5; 64 * 48], 64, 48, 20, 33, ZoomOrder::Cubic) {
            assert!((v - 3.5).abs() < 1e-5);
        }
    }

    #[test]
    fn isic_augmentation_is_seeded_binary_and_aligned() {
        let base = square_sample(40, 48, 3);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..16u64 {
            let mut a = base.clone();
            augment_isic(&mut a, seed);
            let mut b = base.clone();
            augment_isic(&mut b, seed);
            assert_eq!(a, b, "same seed, same result");
            assert!(a.mask.iter().all(|m| *m == 0.0 || *m == 1.0));
            for c in 0..3 {
                let plane = &a.image[c * 40 * 48..(c + 1) * 40 * 48];
                for (v, m) in plane.iter().zip(&a.mask) {
                    assert_eq!(*v > 128.0, *m == 1.0, "seed {seed}: mask covers the square");
                }
            }
            seen.insert(a.mask.iter().map(|m| *m as u8).collect::<Vec<_>>());
        }
        // Unrotated outcomes are one of four flips; rotated ones (p = 0.5) are all distinct.
        assert!(
            seen.len() >= 6,
            "different seeds differ ({} distinct)",
            seen.len()
        );
    }

    #[test]
    fn synapse_augmentation_keeps_integer_labels_and_alignment() {
        // Without a zoom (size = native), image and label move together exactly.
        let mut base = square_sample(30, 30, 1);
        base.mask.iter_mut().for_each(|m| *m *= 7.0);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..16u64 {
            let mut a = base.clone();
            augment_synapse(&mut a, seed, 30);
            let mut b = base.clone();
            augment_synapse(&mut b, seed, 30);
            assert_eq!(a, b);
            for (v, m) in a.image.iter().zip(&a.mask) {
                assert_eq!(*v > 128.0, *m == 7.0, "seed {seed}");
            }
            seen.insert(a.mask.iter().map(|m| *m as u8).collect::<Vec<_>>());
        }
        assert!(
            seen.len() >= 6,
            "different seeds differ ({} distinct)",
            seen.len()
        );
        // With a zoom, labels stay integers from the input set, the image gets the new size.
        let mut lab = base.clone();
        for (k, m) in lab.mask.iter_mut().enumerate() {
            *m = (k % 9) as f32;
        }
        for seed in 0..8u64 {
            let mut a = lab.clone();
            augment_synapse(&mut a, seed, 22);
            assert_eq!(
                (a.height, a.width, a.image.len(), a.mask.len()),
                (22, 22, 484, 484)
            );
            assert!(a
                .mask
                .iter()
                .all(|m| m.fract() == 0.0 && (0.0..9.0).contains(m)));
        }
    }

    #[test]
    fn sample_seeds_differ() {
        let s: std::collections::HashSet<u64> = (0..4)
            .flat_map(|e| (0..100).map(move |i| sample_seed(7, e, i)))
            .collect();
        assert_eq!(s.len(), 400);
        assert_eq!(sample_seed(7, 1, 2), sample_seed(7, 1, 2));
        assert_ne!(sample_seed(7, 1, 2), sample_seed(8, 1, 2));
    }
}
