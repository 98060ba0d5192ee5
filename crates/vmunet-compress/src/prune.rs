//! Structured pruning of SS2D: whole inner channels and states leave every tensor that has
//! them, so the model (and its scan) really shrinks.
//!
//! **Importance** (weight magnitude, no data needed):
//! - inner channel `c` of a block: what enters it times what leaves it,
//!   `(‖in_proj_x[:, c]‖ + ‖in_proj_z[:, c]‖) · |out_norm.γ[c]| · ‖out_proj[c, :]‖`;
//! - state `n`: how strongly it is written and read, `Σ_k ‖x_proj[k, B_n, :]‖ · ‖x_proj[k, C_n, :]‖`.
//!
//! Every block keeps the same fraction of its channels (its highest-scoring ones, a multiple of
//! [`CHANNEL_ALIGN`]); the fraction is the largest that meets the target (parameters or
//! multiply-adds at the training size).

use burn::tensor::backend::Backend;
use serde::Serialize;
use vmunet_model::{BlockWidth, Ss2d, VmUnet, VmUnetConfig};
use vmunet_scan::{ScanBackend, DIRECTIONS};

use crate::CompressError;

/// What the pruning ratio is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Target {
    /// Parameters of the whole model.
    Params,
    /// Multiply-adds of one forward pass at the model's input size.
    Flops,
}

/// Options of [`prune`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Fraction of the target to remove, in (0, 1).
    pub ratio: f64,
    /// Parameters or multiply-adds.
    pub target: Target,
    /// Fraction of each block's states to remove as well, in [0, 1).
    pub state_ratio: f64,
    /// Input size (H = W) the multiply-adds are counted at.
    pub size: usize,
}

/// One block's widths before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockChange {
    /// Checkpoint prefix (`layers.0.blocks.1`).
    pub block: String,
    /// Inner channels before / after.
    pub d_inner: (usize, usize),
    /// States before / after.
    pub d_state: (usize, usize),
}

/// What [`prune`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    /// Parameters before / after.
    pub params: (usize, usize),
    /// Multiply-adds at `size` before / after.
    pub macs: (u64, u64),
    /// Input size the multiply-adds are counted at.
    pub size: usize,
    /// Fraction of inner channels each block keeps.
    pub channel_keep: f64,
    /// Per block.
    pub blocks: Vec<BlockChange>,
}

fn norms_rows(data: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            data[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

fn values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// Channel scores of one SS2D (see the module documentation).
pub fn channel_scores<B: ScanBackend>(m: &Ss2d<B>) -> Vec<f64> {
    let d = m.d_inner;
    // in_proj weight [C, 2D] (burn layout): column norms = rows of the transpose.
    let w_in = values(m.in_proj.weight.val().transpose());
    let in_norms = norms_rows(&w_in, 2 * d, w_in.len() / (2 * d));
    let w_out = values(m.out_proj.weight.val());
    let out_norms = norms_rows(&w_out, d, w_out.len() / d);
    let gamma = values(m.out_norm.gamma.val());
    (0..d)
        .map(|c| (in_norms[c] + in_norms[d + c]) * (gamma[c] as f64).abs() * out_norms[c])
        .collect()
}

/// State scores of one SS2D (see the module documentation).
pub fn state_scores<B: ScanBackend>(m: &Ss2d<B>) -> Vec<f64> {
    let (d, r, n) = (m.d_inner, m.dt_rank, m.d_state);
    let x = values(m.x_proj_weight.val());
    let rows = r + 2 * n;
    let norms = norms_rows(&x, DIRECTIONS * rows, d);
    (0..n)
        .map(|s| {
            (0..DIRECTIONS)
                .map(|k| norms[k * rows + r + s] * norms[k * rows + r + n + s])
                .sum()
        })
        .collect()
}

/// The `keep` highest-scoring indices, sorted.
fn top(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut v: Vec<usize> = idx.into_iter().take(keep.max(1)).collect();
    v.sort_unstable();
    v
}

/// Parameters of one SS2D of width `c` with `d` inner channels and `n` states.
fn ss2d_params(c: usize, d: usize, n: usize, r: usize, k: usize) -> usize {
    let kk = DIRECTIONS;
    c * 2 * d
        + d * k * k
        + d
        + kk * (r + 2 * n) * d
        + kk * d * r
        + kk * d
        + kk * d * n
        + kk * d
        + 2 * d
        + d * c
}

/// Multiply-adds of one SS2D on `l` positions (projections, conv, scan: about four per state
/// update, direction and channel).
fn ss2d_macs(c: usize, d: usize, n: usize, r: usize, k: usize, l: usize) -> u64 {
    let kk = DIRECTIONS;
    let per =
        c * 2 * d + d * k * k + kk * (r + 2 * n) * d + kk * d * r + kk * d * n * 4 + d * c + 4 * d;
    (per * l) as u64
}

/// Multiply-adds of the model at `size` x `size`, counted per layer (SS2D blocks, patch
/// embedding, merging, expanding and the final 1x1 conv).
pub fn model_macs(cfg: &VmUnetConfig, size: usize) -> u64 {
    let mut total = 0u64;
    let p = cfg.patch_size;
    let c0 = cfg.dims[0];
    let l0 = (size / p) * (size / p);
    total += (l0 * c0 * cfg.input_channels * p * p) as u64;
    let stages = cfg.num_stages();
    for (decoder, depths) in [(false, &cfg.depths), (true, &cfg.depths_decoder)] {
        for (stage, &depth) in depths.iter().enumerate() {
            let s = if decoder { stages - 1 - stage } else { stage };
            let c = cfg.dims[s];
            let l = l0 >> (2 * s);
            if decoder && stage > 0 {
                // Patch expanding from 2C at l/4 positions to C at l.
                total += ((l / 4) * (2 * c) * (4 * c)) as u64;
            }
            for b in 0..depth {
                let w = cfg.block_width(decoder, stage, b);
                total += ss2d_macs(c, w.d_inner, w.d_state, cfg.dt_rank_for(c), cfg.d_conv, l);
            }
            if !decoder && stage + 1 < stages {
                total += ((l / 4) * (4 * c) * (2 * c)) as u64;
            }
        }
    }
    // Final x4 expand (Linear C0 -> 4 C0 at l0) and the 1x1 conv at full size.
    total += (l0 * c0 * 4 * c0) as u64;
    total += (size * size * (c0 / 4) * cfg.num_classes) as u64;
    total
}

/// Kept inner channels are a multiple of this (the SIMD width of the scan kernels), when the
/// block has at least this many.
pub const CHANNEL_ALIGN: usize = 8;

fn aligned(d: usize, keep: f64) -> usize {
    let x = d as f64 * keep;
    if d < CHANNEL_ALIGN {
        return (x.round() as usize).clamp(1, d);
    }
    (((x / CHANNEL_ALIGN as f64).round() as usize) * CHANNEL_ALIGN).clamp(CHANNEL_ALIGN, d)
}

fn widths_for(cfg: &VmUnetConfig, keep: f64, state_keep: f64) -> Vec<BlockWidth> {
    let mut v = Vec::new();
    for (decoder, depths) in [(false, &cfg.depths), (true, &cfg.depths_decoder)] {
        for (stage, &depth) in depths.iter().enumerate() {
            for b in 0..depth {
                let w = cfg.block_width(decoder, stage, b);
                v.push(BlockWidth {
                    d_inner: aligned(w.d_inner, keep),
                    d_state: ((w.d_state as f64 * state_keep).round() as usize).clamp(1, w.d_state),
                });
            }
        }
    }
    v
}

fn params_with(cfg: &VmUnetConfig, total: usize, widths: &[BlockWidth]) -> usize {
    let mut before = 0;
    let mut after = 0;
    let mut i = 0;
    for (decoder, depths) in [(false, &cfg.depths), (true, &cfg.depths_decoder)] {
        for (stage, &depth) in depths.iter().enumerate() {
            let c = if decoder {
                cfg.dims_decoder()[stage]
            } else {
                cfg.dims[stage]
            };
            for b in 0..depth {
                let w = cfg.block_width(decoder, stage, b);
                let r = cfg.dt_rank_for(c);
                before += ss2d_params(c, w.d_inner, w.d_state, r, cfg.d_conv);
                after += ss2d_params(c, widths[i].d_inner, widths[i].d_state, r, cfg.d_conv);
                i += 1;
            }
        }
    }
    total - before + after
}

/// Prunes `model` (configuration `cfg`, `params` parameters) to remove `opts.ratio` of the
/// target; returns the smaller model, its configuration and what changed.
pub fn prune<B: ScanBackend>(
    model: VmUnet<B>,
    cfg: &VmUnetConfig,
    params: usize,
    opts: &PruneOptions,
) -> Result<(VmUnet<B>, VmUnetConfig, PruneReport), CompressError> {
    if !(opts.ratio > 0.0 && opts.ratio < 1.0) {
        return Err(CompressError::Options(format!(
            "--ratio {} is outside (0, 1): it is the fraction of the {} to remove",
            opts.ratio,
            match opts.target {
                Target::Params => "parameters",
                Target::Flops => "multiply-adds",
            }
        )));
    }
    if !(0.0..1.0).contains(&opts.state_ratio) {
        return Err(CompressError::Options(format!(
            "--state-ratio {} is outside [0, 1)",
            opts.state_ratio
        )));
    }
    let state_keep = 1.0 - opts.state_ratio;
    let macs_before = model_macs(cfg, opts.size);
    let measure = |keep: f64| -> f64 {
        let widths = widths_for(cfg, keep, state_keep);
        match opts.target {
            Target::Params => params_with(cfg, params, &widths) as f64 / params as f64,
            Target::Flops => {
                let c = cfg.clone().with_block_widths(Some(widths));
                model_macs(&c, opts.size) as f64 / macs_before as f64
            }
        }
    };
    let goal = 1.0 - opts.ratio;
    if measure(0.0) > goal {
        return Err(CompressError::Unsupported(format!(
            "pruning SS2D channels cannot remove {:.0} % of the {}: the layers outside SS2D alone keep {:.1} % (try a smaller --ratio)",
            opts.ratio * 100.0,
            match opts.target {
                Target::Params => "parameters",
                Target::Flops => "multiply-adds",
            },
            measure(0.0) * 100.0
        )));
    }
    // The largest channel fraction that meets the goal (the measure grows with it).
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if measure(mid) <= goal {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let keep_frac = lo;
    let widths = widths_for(cfg, keep_frac, state_keep);
    let names = cfg.block_names();
    let keep: Vec<(Vec<usize>, Vec<usize>)> = model
        .mixers()
        .iter()
        .zip(&widths)
        .map(|(m, w)| {
            (
                top(&channel_scores(m), w.d_inner),
                top(&state_scores(m), w.d_state),
            )
        })
        .collect();
    let before: Vec<(usize, usize)> = model
        .mixers()
        .iter()
        .map(|m| (m.d_inner, m.d_state))
        .collect();
    let (pruned, new_cfg) = model
        .prune_blocks(cfg, &keep)
        .map_err(|e| CompressError::Unsupported(e.to_string()))?;
    let params_after = params_with(cfg, params, &widths);
    let report = PruneReport {
        params: (params, params_after),
        macs: (macs_before, model_macs(&new_cfg, opts.size)),
        size: opts.size,
        channel_keep: keep_frac,
        blocks: names
            .into_iter()
            .zip(before.iter().zip(&widths))
            .map(|(block, (&(d0, s0), w))| BlockChange {
                block,
                d_inner: (d0, w.d_inner),
                d_state: (s0, w.d_state),
            })
            .collect(),
    };
    Ok((pruned, new_cfg, report))
}
