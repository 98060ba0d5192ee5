//! The architecture a checkpoint holds, inferred from its official keys and tensor shapes.

use std::collections::{BTreeMap, BTreeSet};

use crate::{BlockWidth, VmUnetConfig};

/// Official key -> PyTorch-layout shape.
type Shapes = BTreeMap<String, Vec<usize>>;

/// Infers the configuration from official keys and PyTorch-layout shapes.
pub fn infer_config(shapes: &BTreeMap<String, Vec<usize>>) -> Result<VmUnetConfig, String> {
    let pe = get(shapes, "patch_embed.proj.weight")?;
    if pe.len() != 4 || pe[2] != pe[3] {
        return Err(format!(
            "`patch_embed.proj.weight` has shape {pe:?}, expected (C0, C_in, p, p)"
        ));
    }
    let (c0, input_channels, patch_size) = (pe[0], pe[1], pe[2]);
    let stages = count(shapes, "layers.");
    if stages == 0 || count(shapes, "layers_up.") != stages {
        return Err(format!(
            "found {stages} encoder and {} decoder stages (`layers.*`, `layers_up.*`)",
            count(shapes, "layers_up.")
        ));
    }
    let depths: Vec<usize> = (0..stages)
        .map(|i| count(shapes, &format!("layers.{i}.blocks.")))
        .collect();
    let depths_decoder: Vec<usize> = (0..stages)
        .map(|i| count(shapes, &format!("layers_up.{i}.blocks.")))
        .collect();
    let blocks = read_blocks(shapes, &depths, &depths_decoder)?;
    let widths = Widths::of(&blocks.blocks)?;
    if blocks.dims.first() != Some(&c0) {
        return Err(format!(
            "patch embedding width {c0} differs from the first stage width {:?}",
            blocks.dims.first()
        ));
    }
    let dt_rank = dt_rank(&blocks.ranks)?;
    let num_classes = dim(shapes, "final_conv.weight", 4, 0)?;
    Ok(VmUnetConfig::new()
        .with_input_channels(input_channels)
        .with_num_classes(num_classes)
        .with_dims(blocks.dims)
        .with_depths(depths)
        .with_depths_decoder(depths_decoder)
        .with_d_state(widths.d_state.unwrap_or(16))
        .with_d_conv(blocks.d_conv.unwrap_or(3))
        .with_ssm_expand(widths.expand.unwrap_or(2))
        .with_dt_rank(dt_rank)
        .with_patch_size(patch_size)
        .with_block_widths(widths.per_block))
}

fn get<'s>(shapes: &'s Shapes, k: &str) -> Result<&'s Vec<usize>, String> {
    shapes.get(k).ok_or_else(|| format!("key `{k}` is missing"))
}

/// Dimension `i` of `k`, which must have rank `rank`.
fn dim(shapes: &Shapes, k: &str, rank: usize, i: usize) -> Result<usize, String> {
    let s = get(shapes, k)?;
    if s.len() != rank {
        return Err(format!("`{k}` has shape {s:?}, expected rank {rank}"));
    }
    Ok(s[i])
}

/// How many distinct indices follow `prefix` (`layers.` -> the number of stages).
fn count(shapes: &Shapes, prefix: &str) -> usize {
    let mut idx = BTreeSet::new();
    for k in shapes.keys() {
        if let Some(rest) = k.strip_prefix(prefix) {
            if let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok()) {
                idx.insert(i);
            }
        }
    }
    idx.len()
}

/// What the VSS blocks' shapes say, encoder then decoder.
struct Blocks {
    /// Encoder stage widths (first block of each stage).
    dims: Vec<usize>,
    /// `(C, d_inner, d_state)` per block: uniform for a trained model, per block after
    /// structured pruning.
    blocks: Vec<(usize, usize, usize)>,
    /// `(C, dt_rank)` per block.
    ranks: Vec<(usize, usize)>,
    /// The depthwise convolution's kernel size (one for all blocks).
    d_conv: Option<usize>,
}

fn read_blocks(
    shapes: &Shapes,
    depths: &[usize],
    depths_decoder: &[usize],
) -> Result<Blocks, String> {
    let mut out = Blocks {
        dims: Vec::new(),
        blocks: Vec::new(),
        ranks: Vec::new(),
        d_conv: None,
    };
    for (stage_prefix, counts) in [("layers", depths), ("layers_up", depths_decoder)] {
        for (i, &n) in counts.iter().enumerate() {
            for b in 0..n {
                let p = format!("{stage_prefix}.{i}.blocks.{b}");
                let c = dim(shapes, &format!("{p}.ln_1.weight"), 1, 0)?;
                if stage_prefix == "layers" && b == 0 {
                    out.dims.push(c);
                }
                let sa = format!("{p}.self_attention");
                let inner2 = dim(shapes, &format!("{sa}.in_proj.weight"), 2, 0)?;
                let st = dim(shapes, &format!("{sa}.A_logs"), 2, 1)?;
                let k = dim(shapes, &format!("{sa}.conv2d.weight"), 4, 2)?;
                let r = dim(shapes, &format!("{sa}.dt_projs_weight"), 3, 2)?;
                if inner2 % 2 != 0 || inner2 == 0 {
                    return Err(format!(
                        "`{sa}.in_proj.weight` has {inner2} rows, expected 2 x d_inner"
                    ));
                }
                match out.d_conv {
                    None => out.d_conv = Some(k),
                    Some(prev) if prev != k => {
                        return Err(format!(
                            "d_conv differs between blocks ({prev} vs {k} in {p})"
                        ))
                    }
                    _ => {}
                }
                out.blocks.push((c, inner2 / 2, st));
                out.ranks.push((c, r));
            }
        }
    }
    Ok(out)
}

/// The expansion and state size, or each block's widths for a pruned model.
struct Widths {
    expand: Option<usize>,
    d_state: Option<usize>,
    per_block: Option<Vec<BlockWidth>>,
}

impl Widths {
    fn of(blocks: &[(usize, usize, usize)]) -> Result<Self, String> {
        let Some(&first) = blocks.first() else {
            return Err("the model has no VSS blocks".into());
        };
        let uniform_expand = (first.1 % first.0 == 0).then_some(first.1 / first.0);
        let uniform = uniform_expand.is_some_and(|e| {
            blocks
                .iter()
                .all(|&(c, inner, st)| inner == e * c && st == first.2)
        });
        if uniform {
            return Ok(Self {
                expand: uniform_expand,
                d_state: Some(first.2),
                per_block: None,
            });
        }
        // A pruned model: the nominal expansion and state size, and every block's widths.
        let widths = blocks
            .iter()
            .map(|&(_, d_inner, d_state)| BlockWidth { d_inner, d_state })
            .collect();
        Ok(Self {
            expand: Some(2),
            d_state: blocks.iter().map(|b| b.2).max(),
            per_block: Some(widths),
        })
    }
}

/// `None` when every block uses the default `ceil(C / 16)`, else the one shared rank.
fn dt_rank(ranks: &[(usize, usize)]) -> Result<Option<usize>, String> {
    if ranks.iter().all(|&(c, r)| r == c.div_ceil(16)) {
        Ok(None)
    } else if ranks.windows(2).all(|w| w[0].1 == w[1].1) {
        Ok(Some(ranks[0].1))
    } else {
        Err("dt_rank is neither ceil(C/16) per stage nor one value".into())
    }
}
