//! The [`SelectiveScan`] interface over host buffers, its gradients ([`ScanGrads`]), and the
//! backward pass shared by every host implementation: recompute the states of one channel,
//! then walk the sequence backwards (float64 accumulation). Threads over (batch, direction
//! group).

use rayon::prelude::*;

use crate::dims::{ScanError, ScanInputs};

/// Gradients of the scan output with respect to every input, in the inputs' layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanGrads {
    /// d/du, `(B, C, L)`.
    pub u: Vec<f32>,
    /// d/d(delta) before the bias and softplus, `(B, C, L)`.
    pub delta: Vec<f32>,
    /// d/dA, `(C, N)`.
    pub a: Vec<f32>,
    /// d/dB, `(B, K, N, L)`.
    pub b: Vec<f32>,
    /// d/dC, `(B, K, N, L)`.
    pub c: Vec<f32>,
    /// d/dD, `(C)`.
    pub d: Vec<f32>,
    /// d/d(delta_bias), `(C)`.
    pub delta_bias: Vec<f32>,
}

/// A selective-scan implementation: forward and backward over host buffers.
pub trait SelectiveScan: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &'static str;

    /// Computes `y` with layout `(B, C, L)`.
    fn forward(&self, inputs: &ScanInputs<'_>) -> Result<Vec<f32>, ScanError>;

    /// Computes the gradients of `sum(y * dy)` with respect to every input.
    fn backward(&self, inputs: &ScanInputs<'_>, dy: &[f32]) -> Result<ScanGrads, ScanError> {
        inputs.dims.check_len("dy", dy.len(), inputs.dims.x_len())?;
        inputs.validate()?;
        Ok(backward(inputs, dy))
    }
}

/// Per (batch, group): the group index and its partial dA, dD, d(delta_bias).
type GroupPartial = (usize, Vec<f64>, Vec<f64>, Vec<f64>);

/// Gradients of `sum(y * dy)` for valid `inp` and `dy` (checked by the callers).
pub(crate) fn backward(inp: &ScanInputs<'_>, dy: &[f32]) -> ScanGrads {
    let d = inp.dims;
    let (len, n_st, cpg) = (d.len, d.d_state, d.channels_per_group());
    let mut g = ScanGrads {
        u: vec![0.0; d.x_len()],
        delta: vec![0.0; d.x_len()],
        a: vec![0.0; d.channels * n_st],
        b: vec![0.0; d.bc_len()],
        c: vec![0.0; d.bc_len()],
        d: vec![0.0; d.channels],
        delta_bias: vec![0.0; d.channels],
    };
    if d.x_len() == 0 || len == 0 {
        return g;
    }
    let x_chunk = cpg * len;
    let bc_chunk = n_st * len;
    // Per (batch, group): partial dA, dD, d(delta_bias) for the group's channels.
    let partials: Vec<GroupPartial> = g
        .u
        .par_chunks_mut(x_chunk)
        .zip(g.delta.par_chunks_mut(x_chunk))
        .zip(g.b.par_chunks_mut(bc_chunk))
        .zip(g.c.par_chunks_mut(bc_chunk))
        .enumerate()
        .map(|(item, (((du, ddelta), db), dc))| {
            let (batch, group) = (item / d.groups, item % d.groups);
            let mut da = vec![0f64; cpg * n_st];
            let mut dd = vec![0f64; cpg];
            let mut dbias = vec![0f64; cpg];
            let mut hist = vec![0f32; len * n_st];
            let mut gstate = vec![0f64; n_st];
            let mut decay_next = vec![0f64; n_st];
            let bc_off = item * bc_chunk;
            for j in 0..cpg {
                let ch = group * cpg + j;
                let xo = (batch * d.channels + ch) * len;
                let arow = &inp.a[ch * n_st..(ch + 1) * n_st];
                // Forward: states h_l for every l.
                let mut prev = vec![0f32; n_st];
                for l in 0..len {
                    let dt = inp.dt(inp.delta[xo + l], ch);
                    let du_l = dt * inp.u[xo + l];
                    for n in 0..n_st {
                        let h = (dt * arow[n]).exp() * prev[n] + du_l * inp.b[bc_off + n * len + l];
                        hist[l * n_st + n] = h;
                        prev[n] = h;
                    }
                }
                // Backward.
                gstate.iter_mut().for_each(|v| *v = 0.0);
                decay_next.iter_mut().for_each(|v| *v = 0.0);
                for l in (0..len).rev() {
                    let raw = inp.delta[xo + l] + inp.delta_bias[ch];
                    let dt = inp.dt(inp.delta[xo + l], ch) as f64;
                    let u = inp.u[xo + l] as f64;
                    let dyl = dy[xo + l] as f64;
                    dd[j] += dyl * u;
                    let mut du_acc = dyl * inp.d[ch] as f64;
                    let mut ddt = 0f64;
                    for n in 0..n_st {
                        let bi = bc_off + n * len + l;
                        let (bn, cn) = (inp.b[bi] as f64, inp.c[bi] as f64);
                        let h = hist[l * n_st + n] as f64;
                        let hp = if l > 0 {
                            hist[(l - 1) * n_st + n] as f64
                        } else {
                            0.0
                        };
                        let an = arow[n] as f64;
                        let decay = (dt * an).exp();
                        let gs = dyl * cn + decay_next[n] * gstate[n];
                        gstate[n] = gs;
                        decay_next[n] = decay;
                        dc[n * len + l] += (dyl * h) as f32;
                        ddt += gs * (an * decay * hp + bn * u);
                        da[j * n_st + n] += gs * dt * decay * hp;
                        db[n * len + l] += (gs * dt * u) as f32;
                        du_acc += gs * dt * bn;
                    }
                    let draw = if inp.delta_softplus && raw <= 20.0 {
                        ddt / (1.0 + (-(raw as f64)).exp())
                    } else {
                        ddt
                    };
                    du[j * len + l] = du_acc as f32;
                    ddelta[j * len + l] = draw as f32;
                    dbias[j] += draw;
                }
            }
            (group, da, dd, dbias)
        })
        .collect();
    for (group, da, dd, dbias) in partials {
        let ch0 = group * cpg;
        for (i, v) in da.iter().enumerate() {
            g.a[ch0 * n_st + i] += *v as f32;
        }
        for j in 0..cpg {
            g.d[ch0 + j] += dd[j] as f32;
            g.delta_bias[ch0 + j] += dbias[j] as f32;
        }
    }
    g
}
