//! `vmunet eval`: the paper's metrics for a checkpoint on a dataset folder.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vmunet_model::{checkpoint, CpuBackend};
use vmunet_train::data::IsicSet;
use vmunet_train::eval::{evaluate_isic, evaluate_synapse, Limited};
use vmunet_train::{DatasetKind, Silent};

/// Arguments of `vmunet eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint (.bpk from `vmunet train`, official .pth, safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset folder: ISIC layout (evaluates val/) or Synapse (evaluates test_vol_h5/).
    #[arg(long)]
    data: PathBuf,
    /// Write the metrics as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Input size (default 256 for ISIC, 224 for Synapse).
    #[arg(long)]
    size: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Evaluate at most this many images (ISIC).
    #[arg(long)]
    max_images: Option<usize>,
    /// Foreground threshold (ISIC).
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
}

/// Runs `vmunet eval`.
pub fn run(a: Args) -> Result<()> {
    let device = Default::default();
    let (model, _) = checkpoint::load::<CpuBackend>(&a.checkpoint, &device)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let kind = DatasetKind::Auto.resolve(&a.data)?;
    let json = match kind {
        DatasetKind::Synapse => {
            if model.num_classes() < 2 {
                bail!(
                    "{}: a {}-class model cannot be evaluated on Synapse (9 classes)",
                    a.checkpoint.display(),
                    model.num_classes()
                );
            }
            let vols = vmunet_data::SynapseVolumes::open(&a.data)?;
            let size = a.size.unwrap_or(224);
            let s = evaluate_synapse(&model, &vols, size, a.batch_size, &device, |i, n| {
                eprintln!("case {i}/{n}")
            })?;
            println!("| organ | DSC | HD95 |\n|---|---|---|");
            for o in &s.organs {
                println!("| {} | {:.4} | {:.2} |", o.name, o.mean_dice, o.mean_hd95);
            }
            println!("| mean | {:.4} | {:.2} |", s.mean_dice, s.mean_hd95);
            let organs: serde_json::Map<String, serde_json::Value> = s
                .organs
                .iter()
                .map(|o| {
                    (
                        o.name.clone(),
                        serde_json::json!({"dsc": o.mean_dice, "hd95": o.mean_hd95}),
                    )
                })
                .collect();
            serde_json::json!({
                "dataset": "synapse",
                "cases": s.num_cases,
                "dsc": s.mean_dice,
                "hd95": s.mean_hd95,
                "organs": organs,
                "per_case": s.cases,
            })
        }
        _ => {
            if model.num_classes() != 1 {
                bail!(
                    "{}: ISIC evaluation needs a one-class model, this one has {} classes",
                    a.checkpoint.display(),
                    model.num_classes()
                );
            }
            let size = a.size.unwrap_or(256);
            let val = vmunet_data::IsicDataset::open(&a.data, vmunet_data::Split::Val, size)?;
            let set = Arc::new(Limited {
                inner: Arc::new(IsicSet(val)),
                max: a.max_images,
            });
            let r = evaluate_isic(
                &model,
                set,
                a.batch_size,
                2,
                a.threshold,
                &device,
                &mut Silent,
            )?;
            let m = r.metrics;
            println!("| images | mIoU | DSC | Acc | Sen | Spe |\n|---|---|---|---|---|---|");
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.images,
                m.miou * 100.0,
                m.dsc * 100.0,
                m.acc * 100.0,
                m.sen * 100.0,
                m.spe * 100.0
            );
            serde_json::json!({
                "dataset": "isic",
                "images": r.images,
                "loss": r.loss,
                "threshold": a.threshold,
                "miou": m.miou,
                "dsc": m.dsc,
                "acc": m.acc,
                "sen": m.sen,
                "spe": m.spe,
            })
        }
    };
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&json)?;
        vmunet_data::write_atomic(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
