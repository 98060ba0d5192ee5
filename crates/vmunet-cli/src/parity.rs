//! `vmunet parity`: the burn model against every available runtime on the exported file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vmunet_data::{activate, load_image, mask_from_probabilities, preprocess, Array, Preprocess};
use vmunet_runtime::{BurnRuntime, ModelDim, ModelFile, Runtime, RuntimeKind};

use crate::infer::collect_images;
use crate::util::ModelSource;

/// Arguments of `vmunet parity`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: ModelSource,
    /// The exported ONNX model to check against the checkpoint.
    #[arg(long, value_name = "model.onnx")]
    model: PathBuf,
    /// Folder of real images to include (preprocessed as `segment` does).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// At most this many images from --images.
    #[arg(long, default_value_t = 8)]
    max_images: usize,
    /// Random input tensors to include.
    #[arg(long, default_value_t = 2)]
    random: usize,
    /// Fail (exit 1) when any runtime's max |logit diff| exceeds this.
    #[arg(long, default_value_t = 1e-4)]
    threshold: f32,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Input size (H = W) for models exported with --dynamic-hw.
    #[arg(long, default_value_t = 256)]
    size: usize,
}

/// One runtime's agreement with burn over all inputs.
#[derive(Default)]
struct Row {
    runtime: String,
    inputs: usize,
    max_diff: f32,
    mean_diff: f64,
    agree: f64,
    dice: f64,
    error: Option<String>,
}

fn dice(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut total) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        inter += usize::from(*x > 0 && *y > 0);
        total += usize::from(*x > 0) + usize::from(*y > 0);
    }
    if total == 0 {
        1.0
    } else {
        2.0 * inter as f64 / total as f64
    }
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.source.load()?;
    let file = ModelFile::read(&a.model)?;
    let dim = |i: usize| match file.input.dims.get(i) {
        Some(ModelDim::Fixed(v)) => Ok(*v),
        Some(ModelDim::Free(_)) if i >= 2 => Ok(a.size),
        _ => bail!("{}: input dimension {i} is not fixed", a.model.display()),
    };
    let (c, h, w) = (dim(1)?, dim(2)?, dim(3)?);
    let classes = loaded.config.num_classes;
    // Inputs: seeded random tensors in the preprocessed range, then real images.
    let mut inputs: Vec<(String, Array)> = Vec::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for r in 0..a.random {
        let data = (0..c * h * w)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 255.0
            })
            .collect();
        inputs.push((
            format!("random-{r}"),
            Array {
                shape: vec![1, c, h, w],
                data,
            },
        ));
    }
    if let Some(dir) = &a.images {
        let pre = Preprocess {
            height: h,
            width: w,
            channels: c,
        };
        for p in collect_images(std::slice::from_ref(dir))?
            .into_iter()
            .take(a.max_images)
        {
            let t = preprocess(&load_image(&p)?, &pre);
            inputs.push((
                p.display().to_string(),
                Array {
                    shape: vec![1, c, h, w],
                    data: t.data,
                },
            ));
        }
    }
    if inputs.is_empty() {
        bail!("no inputs: give --random N > 0 or --images DIR");
    }
    // The reference: the checkpoint in burn, behind the same trait as the runtimes.
    let label = loaded.label.clone();
    let mut burn = BurnRuntime::new(loaded.model);
    let mut reference = Vec::new();
    for (name, x) in &inputs {
        let y = burn.run(x).with_context(|| format!("burn on {name}"))?;
        reference.push(y.data);
    }
    drop(burn);
    let mut rows = Vec::new();
    for kind in [RuntimeKind::Tract, RuntimeKind::Ort] {
        let mut row = Row {
            runtime: format!("{kind:?}").to_lowercase(),
            ..Default::default()
        };
        let mut rt = match vmunet_runtime::open(kind, &a.model) {
            Ok(rt) => rt,
            Err(e) => {
                row.error = Some(e.to_string());
                rows.push(row);
                continue;
            }
        };
        row.runtime = rt.description();
        let (mut agree_min, mut dice_min, mut sum, mut count) = (1.0f64, 1.0f64, 0f64, 0usize);
        for ((name, x), want) in inputs.iter().zip(&reference) {
            let got = rt
                .run(x)
                .with_context(|| format!("{} on {name}", row.runtime))?;
            for (g, r) in got.data.iter().zip(want) {
                let d = (g - r).abs();
                row.max_diff = row.max_diff.max(if d.is_nan() { f32::INFINITY } else { d });
                sum += d as f64;
            }
            count += want.len();
            let (mut pg, mut pr) = (got.data.clone(), want.clone());
            let shape = [1, classes, h, w];
            activate(&mut pg, &shape);
            activate(&mut pr, &shape);
            let mask = |p: &[f32]| mask_from_probabilities(p, classes, (h, w), (h, w), 0.5).data;
            let (mg, mr) = (mask(&pg), mask(&pr));
            let same = mg.iter().zip(&mr).filter(|(x, y)| x == y).count() as f64 / mg.len() as f64;
            agree_min = agree_min.min(same);
            dice_min = dice_min.min(dice(&mg, &mr));
        }
        row.inputs = inputs.len();
        row.mean_diff = sum / count.max(1) as f64;
        row.agree = agree_min;
        row.dice = dice_min;
        rows.push(row);
    }
    println!(
        "parity: {} vs {} ({} inputs: {} random, {} images)",
        a.model.display(),
        label,
        inputs.len(),
        a.random,
        inputs.len() - a.random
    );
    println!(
        "| runtime | max abs logit diff | mean abs diff | min mask agreement | min Dice | status |"
    );
    println!("|---|---|---|---|---|---|");
    let mut failed = false;
    let mut ran = 0;
    for r in &rows {
        match &r.error {
            Some(e) => println!("| {} | - | - | - | - | not run: {e} |", r.runtime),
            None => {
                ran += 1;
                let ok = r.max_diff <= a.threshold;
                failed |= !ok;
                println!(
                    "| {} | {:.3e} | {:.3e} | {:.6} | {:.6} | {} |",
                    r.runtime,
                    r.max_diff,
                    r.mean_diff,
                    r.agree,
                    r.dice,
                    if ok { "ok" } else { "FAIL" }
                );
            }
        }
    }
    if let Some(j) = &a.json {
        let v = serde_json::json!({
            "model": a.model.display().to_string(), "checkpoint": label,
            "threshold": a.threshold, "inputs": inputs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "runtimes": rows.iter().map(|r| serde_json::json!({
                "runtime": r.runtime, "ran": r.error.is_none(), "error": r.error,
                "max_abs_diff": r.max_diff, "mean_abs_diff": r.mean_diff,
                "min_mask_agreement": r.agree, "min_dice": r.dice,
                "pass": r.error.is_none() && r.max_diff <= a.threshold,
            })).collect::<Vec<_>>(),
        });
        vmunet_data::write_atomic(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    if ran == 0 {
        bail!("no runtime could run {}", a.model.display());
    }
    if failed {
        bail!(
            "parity failed: a runtime exceeds the max |logit diff| threshold {:e}",
            a.threshold
        );
    }
    Ok(())
}
