//! Sequential reference, a float64 transcription of mamba's `selective_scan_ref`.

use crate::dims::{ScanError, ScanInputs};
use crate::math::softplus64;
use crate::scan::SelectiveScan;

/// Exact sequential scan in float64 (slow; for tests and as the ground truth).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReferenceScan;

impl SelectiveScan for ReferenceScan {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn forward(&self, inp: &ScanInputs<'_>) -> Result<Vec<f32>, ScanError> {
        inp.validate()?;
        let d = inp.dims;
        let (l_len, n_st) = (d.len, d.d_state);
        let cpg = d.channels_per_group();
        let mut y = vec![0f32; d.x_len()];
        let mut h = vec![0f64; n_st];
        for b in 0..d.batch {
            for ch in 0..d.channels {
                let k = ch / cpg;
                let xo = (b * d.channels + ch) * l_len;
                let bco = (b * d.groups + k) * n_st * l_len;
                h.iter_mut().for_each(|v| *v = 0.0);
                for l in 0..l_len {
                    let raw = inp.delta[xo + l] as f64 + inp.delta_bias[ch] as f64;
                    let dt = if inp.delta_softplus {
                        softplus64(raw)
                    } else {
                        raw
                    };
                    let u = inp.u[xo + l] as f64;
                    let mut acc = 0f64;
                    for (n, hn) in h.iter_mut().enumerate() {
                        let a = inp.a[ch * n_st + n] as f64;
                        let bb = inp.b[bco + n * l_len + l] as f64;
                        let cc = inp.c[bco + n * l_len + l] as f64;
                        *hn = (dt * a).exp() * *hn + dt * bb * u;
                        acc += *hn * cc;
                    }
                    y[xo + l] = (acc + inp.d[ch] as f64 * u) as f32;
                }
            }
        }
        Ok(y)
    }
}
