//! Separable bilinear resampling of planar float images, antialiased when shrinking
//! (torchvision `resize(..., antialias=True)` / PIL `BILINEAR`), half-pixel centres.

/// Weights of one output sample: first source index and normalised weights.
pub(crate) struct Taps {
    pub(crate) start: usize,
    pub(crate) weights: Vec<f32>,
}

/// The taps of each of `dst` samples resampled from `src`.
pub(crate) fn taps(src: usize, dst: usize) -> Vec<Taps> {
    let scale = src as f64 / dst as f64;
    let support = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0)) as usize;
            let hi = ((center + support).ceil() as usize).min(src);
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 + 0.5 - center) / support).abs()).max(0.0))
                .collect();
            let sum: f64 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            Taps {
                start: lo,
                weights: w.into_iter().map(|v| v as f32).collect(),
            }
        })
        .collect()
}

/// Resizes `channels` planes of `h x w` (CHW order) to `out_h x out_w`.
pub fn resize_bilinear(
    src: &[f32],
    channels: usize,
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(
        src.len(),
        channels * h * w,
        "resize: buffer does not match its shape"
    );
    if (h, w) == (out_h, out_w) {
        return src.to_vec();
    }
    let ty = taps(h, out_h);
    let mut out = vec![0f32; channels * out_h * out_w];
    for c in 0..channels {
        let rows = resize_rows(&src[c * h * w..(c + 1) * h * w], (h, w), out_w);
        let dst = &mut out[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (t, o) in ty.iter().zip(dst.chunks_exact_mut(out_w)) {
            resize_column(&rows, out_w, t, o);
        }
    }
    out
}

/// The horizontal pass: each of the `h` rows of `plane` (`h x w`) resampled to `out_w`.
pub(crate) fn resize_rows(plane: &[f32], (h, w): (usize, usize), out_w: usize) -> Vec<f32> {
    let tx = taps(w, out_w);
    let mut rows = vec![0f32; h * out_w];
    for (line, row) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(out_w)) {
        for (t, r) in tx.iter().zip(row.iter_mut()) {
            *r = t
                .weights
                .iter()
                .zip(&line[t.start..])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    rows
}

/// The vertical pass for one output row: `out` (zeroed, `out_w` long) = the rows of `rows`
/// ([`resize_rows`]) weighted by `t`.
pub(crate) fn resize_column(rows: &[f32], out_w: usize, t: &Taps, out: &mut [f32]) {
    for (k, wgt) in t.weights.iter().enumerate() {
        let r = &rows[(t.start + k) * out_w..(t.start + k + 1) * out_w];
        for (a, b) in out.iter_mut().zip(r) {
            *a += wgt * b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resize_bilinear;

    #[test]
    fn identity_constant_and_mean_preserving() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(resize_bilinear(&src, 1, (3, 4), (3, 4)), src);
        let flat = vec![7.5f32; 2 * 30 * 40];
        for v in resize_bilinear(&flat, 2, (30, 40), (8, 11)) {
            assert!((v - 7.5).abs() < 1e-5);
        }
        // Halving averages 2x2 blocks exactly (antialiased triangle of support 2).
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let out = resize_bilinear(&src, 1, (4, 4), (2, 2));
        let mean: f32 = out.iter().sum::<f32>() / 4.0;
        assert!((mean - 7.5).abs() < 1e-4, "{out:?}");
    }

    #[test]
    fn upsampling_matches_half_pixel_bilinear() {
        // 1x2 -> 1x4 with align_corners=False: [0, 0.25, 0.75, 1] * (b - a) + a.
        let out = resize_bilinear(&[0.0, 4.0], 1, (1, 2), (1, 4));
        assert_eq!(out, vec![0.0, 1.0, 3.0, 4.0]);
    }
}
