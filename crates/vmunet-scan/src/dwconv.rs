//! SS2D's depthwise convolution, channels-last, on host buffers.
//!
//! `y[n, oh, ow, c] = bias[c] + sum_{i, j} w[c, i, j] x[n, oh + i - p, ow + j - p, c]`
//! (stride 1, dilation 1, zero padding `p` on every side, one filter per channel). Channels are
//! innermost, so every inner loop is a contiguous multiply-add over `C` that the compiler
//! vectorises. Rows of the output are independent and run in parallel; the weight and bias
//! gradients are summed over fixed row chunks in a fixed order, so results do not depend on the
//! number of threads (training resumes bit for bit).

use rayon::prelude::*;

/// Shapes of a depthwise convolution: input `(N, H, W, C)`, filter `(C, K, K)`, zero padding `P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DwConvDims {
    /// Batch size N.
    pub batch: usize,
    /// Input height H.
    pub height: usize,
    /// Input width W.
    pub width: usize,
    /// Channels C (one filter each).
    pub channels: usize,
    /// Square kernel size K.
    pub kernel: usize,
    /// Zero padding P on every side.
    pub padding: usize,
}

impl DwConvDims {
    /// Output height `H + 2P - K + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding + 1).saturating_sub(self.kernel)
    }

    /// Output width `W + 2P - K + 1`.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding + 1).saturating_sub(self.kernel)
    }

    fn check(&self, x: usize, w: usize) {
        let (n, c, k) = (self.batch, self.channels, self.kernel);
        assert_eq!(
            x,
            n * self.height * self.width * c,
            "depthwise conv: x has {x} values for {self:?}"
        );
        assert_eq!(
            w,
            c * k * k,
            "depthwise conv: weight has {w} values for {self:?}"
        );
        assert!(k > 0, "depthwise conv: kernel size 0");
    }
}

/// Gradients of a depthwise convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct DwConvGrads {
    /// d/dx, `(N, H, W, C)`.
    pub x: Vec<f32>,
    /// d/dw, `(C, K, K)`.
    pub weight: Vec<f32>,
    /// d/d(bias), `(C)`.
    pub bias: Vec<f32>,
}

/// Range of positions `o` in `0..out` with `o + off - pad` in `0..len` (`off` a kernel tap).
fn valid(out: usize, len: usize, off: usize, pad: usize) -> std::ops::Range<usize> {
    let lo = pad.saturating_sub(off);
    let hi = (len + pad).saturating_sub(off).min(out);
    lo..hi.max(lo)
}

/// `(C, K, K)` -> `(K K, C)`.
fn taps_first(w: &[f32], c: usize, kk: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for ci in 0..c {
        for j in 0..kk {
            t[j * c + ci] = w[ci * kk + j];
        }
    }
    t
}

#[inline(always)]
fn axpy(acc: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &a), &b) in acc.iter_mut().zip(a).zip(b) {
        *o += a * b;
    }
}

/// Forward pass: `x (N, H, W, C)`, `weight (C, K, K)`, `bias (C)` -> `(N, Ho, Wo, C)`.
pub fn depthwise_conv2d(dims: &DwConvDims, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    dims.check(x.len(), weight.len());
    let DwConvDims {
        height: h,
        width: w,
        channels: c,
        kernel: k,
        padding: p,
        ..
    } = *dims;
    assert_eq!(
        bias.len(),
        c,
        "depthwise conv: bias has {} values",
        bias.len()
    );
    let (ho, wo) = (dims.out_height(), dims.out_width());
    let taps = taps_first(weight, c, k * k);
    let mut y = vec![0.0f32; dims.batch * ho * wo * c];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(wo * c).enumerate().for_each(|(row, out)| {
        let (n, oh) = (row / ho, row % ho);
        for o in out.chunks_exact_mut(c) {
            o.copy_from_slice(bias);
        }
        for i in 0..k {
            let Some(ih) = (oh + i).checked_sub(p).filter(|&ih| ih < h) else {
                continue;
            };
            let xrow = &x[(n * h + ih) * w * c..][..w * c];
            for j in 0..k {
                let tap = &taps[(i * k + j) * c..][..c];
                for ow in valid(wo, w, j, p) {
                    let iw = ow + j - p;
                    axpy(&mut out[ow * c..][..c], tap, &xrow[iw * c..][..c]);
                }
            }
        }
    });
    y
}

/// Backward pass for the output gradient `dy (N, Ho, Wo, C)`.
pub fn depthwise_conv2d_backward(
    dims: &DwConvDims,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
) -> DwConvGrads {
    dims.check(x.len(), weight.len());
    let DwConvDims {
        batch,
        height: h,
        width: w,
        channels: c,
        kernel: k,
        padding: p,
    } = *dims;
    let (ho, wo) = (dims.out_height(), dims.out_width());
    assert_eq!(
        dy.len(),
        batch * ho * wo * c,
        "depthwise conv backward: dy has {} values for {dims:?}",
        dy.len()
    );
    let taps = taps_first(weight, c, k * k);

    // dx[n, ih, iw] = sum_{i, j} w[i, j] dy[n, ih + p - i, iw + p - j]: a gather per input row.
    let mut dx = vec![0.0f32; x.len()];
    if !dx.is_empty() {
        dx.par_chunks_mut(w * c).enumerate().for_each(|(row, out)| {
            let (n, ih) = (row / h, row % h);
            for i in 0..k {
                let Some(oh) = (ih + p).checked_sub(i).filter(|&oh| oh < ho) else {
                    continue;
                };
                let dyrow = &dy[(n * ho + oh) * wo * c..][..wo * c];
                for j in 0..k {
                    let tap = &taps[(i * k + j) * c..][..c];
                    // iw with ow = iw + p - j in 0..wo.
                    for iw in valid(w, wo, p, j) {
                        let ow = iw + p - j;
                        axpy(&mut out[iw * c..][..c], tap, &dyrow[ow * c..][..c]);
                    }
                }
            }
        });
    }

    // dw and d(bias): partial sums over fixed chunks of output rows, added in chunk order.
    let rows = batch * ho;
    let kk = k * k;
    let chunk = rows.div_ceil(32).max(1);
    let partials: Vec<Vec<f32>> = (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|ci| {
            let mut acc = vec![0.0f32; (kk + 1) * c];
            for row in ci * chunk..((ci + 1) * chunk).min(rows) {
                let (n, oh) = (row / ho, row % ho);
                let dyrow = &dy[row * wo * c..][..wo * c];
                let (dw, db) = acc.split_at_mut(kk * c);
                for g in dyrow.chunks_exact(c) {
                    for (b, &g) in db.iter_mut().zip(g) {
                        *b += g;
                    }
                }
                for i in 0..k {
                    let Some(ih) = (oh + i).checked_sub(p).filter(|&ih| ih < h) else {
                        continue;
                    };
                    let xrow = &x[(n * h + ih) * w * c..][..w * c];
                    for j in 0..k {
                        let tap = &mut dw[(i * k + j) * c..][..c];
                        for ow in valid(wo, w, j, p) {
                            let iw = ow + j - p;
                            axpy(tap, &dyrow[ow * c..][..c], &xrow[iw * c..][..c]);
                        }
                    }
                }
            }
            acc
        })
        .collect();
    let mut acc = vec![0.0f32; (kk + 1) * c];
    for part in &partials {
        for (a, v) in acc.iter_mut().zip(part) {
            *a += v;
        }
    }
    let (dw_t, db) = acc.split_at(kk * c);
    let mut dw = vec![0.0f32; c * kk];
    for j in 0..kk {
        for ci in 0..c {
            dw[ci * kk + j] = dw_t[j * c + ci];
        }
    }
    DwConvGrads {
        x: dx,
        weight: dw,
        bias: db.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct float64 transcription of the definition, NCHW-free indexing, no tricks.
    fn reference(d: &DwConvDims, x: &[f32], wt: &[f32], b: &[f32]) -> Vec<f64> {
        let (ho, wo) = (d.out_height(), d.out_width());
        let (h, w, c, k, p) = (d.height, d.width, d.channels, d.kernel, d.padding);
        let mut y = vec![0.0f64; d.batch * ho * wo * c];
        for n in 0..d.batch {
            for oh in 0..ho {
                for ow in 0..wo {
                    for ci in 0..c {
                        let mut s = b[ci] as f64;
                        for i in 0..k {
                            for j in 0..k {
                                let (ih, iw) = (
                                    oh as isize + i as isize - p as isize,
                                    ow as isize + j as isize - p as isize,
                                );
                                if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                                    s += wt[(ci * k + i) * k + j] as f64
                                        * x[((n * h + ih as usize) * w + iw as usize) * c + ci]
                                            as f64;
                                }
                            }
                        }
                        y[((n * ho + oh) * wo + ow) * c + ci] = s;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn case(d: &DwConvDims, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let xl = d.batch * d.height * d.width * d.channels;
        (
            values(xl, seed),
            values(d.channels * d.kernel * d.kernel, seed + 1),
            values(d.channels, seed + 2),
        )
    }

    fn dims_strategy() -> impl Strategy<Value = DwConvDims> {
        (
            1usize..3,
            1usize..7,
            1usize..7,
            1usize..10,
            0usize..3,
            0usize..3,
        )
            .prop_map(
                |(batch, height, width, channels, half, padding)| DwConvDims {
                    batch,
                    height,
                    width,
                    channels,
                    kernel: 2 * half + 1,
                    padding: padding.min(2 * half),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn forward_matches_definition(d in dims_strategy(), seed in 0u64..1000) {
            let (x, wt, b) = case(&d, seed);
            let y = depthwise_conv2d(&d, &x, &wt, &b);
            let r = reference(&d, &x, &wt, &b);
            prop_assert_eq!(y.len(), r.len());
            for (a, e) in y.iter().zip(&r) {
                prop_assert!((*a as f64 - e).abs() < 1e-5, "{} vs {}", a, e);
            }
        }

        /// Each gradient is checked against the adjoint identity it must satisfy:
        /// `<dy, J dx> = <J^T dy, dx>` for the linear parts, with a random direction.
        #[test]
        fn backward_is_the_adjoint(d in dims_strategy(), seed in 0u64..1000) {
            let (x, wt, _) = case(&d, seed);
            let dy = values(d.batch * d.out_height() * d.out_width() * d.channels, seed + 3);
            let g = depthwise_conv2d_backward(&d, &x, &wt, &dy);
            let zero_b = vec![0.0; d.channels];
            let zero_w = vec![0.0; wt.len()];
            let dot = |a: &[f64], v: &[f32]| a.iter().zip(v).map(|(a, &v)| a * v as f64).sum::<f64>();
            let dot32 = |a: &[f32], v: &[f32]| a.iter().zip(v).map(|(&a, &v)| a as f64 * v as f64).sum::<f64>();
            // x -> y is linear in x (bias 0): <dy, conv(x', w)> = <dx, x'>.
            let xp = values(x.len(), seed + 4);
            let lhs = dot(&reference(&d, &xp, &wt, &zero_b), &dy);
            prop_assert!((lhs - dot32(&g.x, &xp)).abs() < 1e-4 * (1.0 + lhs.abs()));
            // Linear in w (bias 0): <dy, conv(x, w')> = <dw, w'>.
            let wp = values(wt.len(), seed + 5);
            let lhs = dot(&reference(&d, &x, &wp, &zero_b), &dy);
            prop_assert!((lhs - dot32(&g.weight, &wp)).abs() < 1e-4 * (1.0 + lhs.abs()));
            // Bias: <dy, conv(x, 0) + b'> = <db, b'>.
            let bp = values(d.channels, seed + 6);
            let lhs = dot(&reference(&d, &x, &zero_w, &bp), &dy);
            prop_assert!((lhs - dot32(&g.bias, &bp)).abs() < 1e-4 * (1.0 + lhs.abs()));
        }
    }

    #[test]
    fn gradients_do_not_depend_on_thread_count() {
        let d = DwConvDims {
            batch: 3,
            height: 21,
            width: 17,
            channels: 24,
            kernel: 3,
            padding: 1,
        };
        let (x, wt, _) = case(&d, 7);
        let dy = values(d.batch * d.out_height() * d.out_width() * d.channels, 9);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool")
                .install(|| depthwise_conv2d_backward(&d, &x, &wt, &dy))
        };
        assert_eq!(run(1), run(3));
    }
}
