//! Quantisation parameters: activation scale and zero point from a calibrated range,
//! symmetric per-channel int8 weights, and int32 biases at the product of the scales.

use super::options::ActivationType;

/// Quantisation parameters of one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point (in the activation type's range).
    pub zero_point: i32,
}

/// Activation parameters for the range `[lo, hi]` (containing 0).
pub fn activation_params(lo: f32, hi: f32, ty: ActivationType, symmetric: bool) -> QParams {
    let (qmin, qmax) = match ty {
        ActivationType::S8 => (-128i32, 127i32),
        ActivationType::U8 => (0, 255),
    };
    let amax = lo.abs().max(hi.abs());
    if symmetric {
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        let zero_point = match ty {
            ActivationType::S8 => 0,
            ActivationType::U8 => 128,
        };
        return QParams { scale, zero_point };
    }
    let span = hi - lo;
    if span <= 0.0 {
        return QParams {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let scale = span / (qmax - qmin) as f32;
    let zero_point = ((qmin as f32) - lo / scale).round() as i32;
    QParams {
        scale,
        zero_point: zero_point.clamp(qmin, qmax),
    }
}

/// Symmetric per-channel int8 weights: the quantised values and one scale per channel.
/// `axis` 0: channels are the outer dimension (Conv `[M, ...]`); axis 1 of a 2-D `[K, N]`:
/// channels are the columns.
pub fn quantize_weights(
    dims: &[usize],
    data: &[f32],
    axis: usize,
    qmax: i32,
) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis];
    let mut amax = vec![0f32; channels];
    let ch = |i: usize| -> usize {
        if axis == 0 {
            i / (data.len() / channels.max(1))
        } else {
            i % channels
        }
    };
    for (i, &w) in data.iter().enumerate() {
        let c = ch(i);
        amax[c] = amax[c].max(w.abs());
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&a| if a > 0.0 { a / qmax as f32 } else { 1.0 })
        .collect();
    let q = data
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            (w / scales[ch(i)])
                .round()
                .clamp(-(qmax as f32), qmax as f32) as i8
        })
        .collect();
    (q, scales)
}

/// A bias quantised to int32 at scale `x_scale * w_scale[c]` per channel: the values and
/// the per-channel scales.
pub(crate) fn quantize_bias(b: &[f32], x_scale: f32, w_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = w_scales.iter().map(|&s| s * x_scale).collect();
    let q: Vec<i32> = b
        .iter()
        .zip(&scales)
        .map(|(&v, &s)| (v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
        .collect();
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_per_channel_and_symmetric() {
        // Conv-like [2, 3]: channel 0 max 1.0, channel 1 max 4.0.
        let (q, s) = quantize_weights(&[2, 3], &[0.5, -1.0, 0.25, 4.0, 2.0, -4.0], 0, 127);
        assert_eq!(s, vec![1.0 / 127.0, 4.0 / 127.0]);
        assert_eq!(q, vec![64, -127, 32, 127, 64, -127]);
        // MatMul [K=2, N=2]: columns.
        let (q, s) = quantize_weights(&[2, 2], &[1.0, 0.5, -2.0, 0.25], 1, 127);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, 127, -127, 64]);
    }

    #[test]
    fn activation_parameters_cover_the_range() {
        let p = activation_params(-1.0, 3.0, ActivationType::S8, false);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        // -1.0 maps to -128, 3.0 to 127.
        assert_eq!(p.zero_point, -128 + 64);
        let p = activation_params(-1.0, 3.0, ActivationType::S8, true);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 3.0 / 127.0).abs() < 1e-7);
        let p = activation_params(0.0, 2.55, ActivationType::U8, false);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 0.01).abs() < 1e-7);
    }
}
