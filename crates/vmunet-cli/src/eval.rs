//! `vmunet eval`: the paper's metrics for a checkpoint, or for an exported / compressed ONNX
//! model in any runtime, on a dataset folder (`vmunet_train::eval::evaluate`); or the Synapse
//! metrics in 3-D between label volumes in NIfTI or DICOM SEG (`--pred P --truth T`), or of a
//! model on a DICOM / NIfTI source (`--source S --truth T`) (`vmunet_clinical::eval`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_runtime::{Session, SessionOptions};
use vmunet_train::eval::{evaluate_checkpoint, evaluate_session, EvalOptions};

/// Arguments of `vmunet eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint (.bpk from `vmunet train`, official .pth, safetensors).
    #[arg(long, required_unless_present_any = ["model", "pred"], conflicts_with = "model")]
    checkpoint: Option<PathBuf>,
    /// An exported (or compressed) ONNX model instead, run with --runtime or --profile.
    #[arg(long, value_name = "model.onnx")]
    model: Option<PathBuf>,
    /// Runtime for --model: tract (default) or ort.
    #[arg(long, requires = "model")]
    runtime: Option<vmunet_runtime::RuntimeKind>,
    /// Device profile (devices/*.toml) for --model.
    #[arg(
        long,
        value_name = "PROFILE.toml",
        requires = "model",
        conflicts_with = "runtime"
    )]
    profile: Option<PathBuf>,
    /// Dataset folder: ISIC layout (evaluates val/), a plain folder with images/ and masks/,
    /// or Synapse (evaluates test_vol_h5/).
    #[arg(long, required_unless_present_any = ["pred", "source"])]
    data: Option<PathBuf>,
    /// Predicted label volumes: a NIfTI file or DICOM SEG, or a folder of NAME.nii.gz /
    /// NAME.seg.dcm (paired with --truth by name); scored with the Synapse metrics in 3-D.
    #[arg(long, requires = "truth", conflicts_with_all = ["checkpoint", "model", "data", "source"])]
    pred: Option<PathBuf>,
    /// A DICOM series folder, DICOM file or NIfTI file to segment with the model and score
    /// against --truth.
    #[arg(long, requires = "truth", conflicts_with = "data")]
    source: Option<PathBuf>,
    /// Ground-truth label volume(s) for --pred or --source (NIfTI or DICOM SEG; a SEG is read
    /// on the grid of the NIfTI on the other side).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Classes, background included, for --pred (default 9: Synapse).
    #[arg(long, default_value_t = 9)]
    classes: usize,
    /// Write the metrics as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Input size (default 256 for ISIC, 224 for Synapse; fixed-size ONNX models use theirs).
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

/// `--pred` / `--source` with `--truth`: the 3-D Synapse metrics of label volumes.
fn run_volumes(a: &Args, truth: &std::path::Path) -> Result<()> {
    use vmunet_clinical::eval::{add_case, evaluate_pairs, pair_cases, Labels};
    use vmunet_train::eval::EvalReport;
    let (model, summary) = if let Some(pred) = &a.pred {
        let pairs = pair_cases(pred, truth)?;
        (
            pred.display().to_string(),
            evaluate_pairs(&pairs, a.classes)?,
        )
    } else {
        let Some(src) = &a.source else {
            anyhow::bail!("give --pred FILE|DIR or --source FILE|DIR");
        };
        let session = match (&a.checkpoint, &a.model) {
            (Some(ck), _) => vmunet_runtime::BurnRuntime::session(
                vmunet_model::ModelSource::Checkpoint(ck.clone()).load()?,
            ),
            (None, Some(path)) => {
                let options = SessionOptions {
                    runtime: a.runtime,
                    profile: crate::args::load_profile(a.profile.as_deref())?,
                    ..Default::default()
                };
                Session::open(path, &options)
                    .with_context(|| format!("opening {}", path.display()))?
            }
            (None, None) => anyhow::bail!("give --checkpoint FILE or --model FILE.onnx"),
        };
        let label = session.label().to_string();
        let info = match &a.checkpoint {
            Some(ck) => {
                let info = vmunet_model::checkpoint::inspect(ck)?;
                let p = info
                    .preprocessing
                    .unwrap_or(vmunet_onnx_ir::Preprocessing::Synapse);
                Some((
                    p,
                    vmunet_onnx_ir::default_class_names(info.config.num_classes, Some(p)),
                ))
            }
            None => None,
        };
        let mut volumes = vmunet_clinical::VolumeSegmenter::with_model_info(
            session,
            &vmunet_clinical::VolumeOptions {
                size: a.size,
                batch: a.batch_size,
                threshold: a.threshold as f32,
            },
            info,
        )?;
        let classes = volumes.classes().len().max(2);
        let source = vmunet_clinical::read_source(src)?;
        let (labels, _) = volumes.segment(&source)?;
        let pred = Labels {
            geometry: *source.content.geometry(),
            labels,
        };
        let mut metrics = vmunet_clinical::eval::SynapseMetrics::new(classes)?;
        add_case(&mut metrics, &source.name, &pred, truth)?;
        (label, metrics.summary())
    };
    let report = EvalReport::Synapse { model, summary };
    print_report(&report, a.json.as_deref())
}

/// Prints the report's table and writes its JSON to `json` when asked.
fn print_report(
    report: &vmunet_train::eval::EvalReport,
    json: Option<&std::path::Path>,
) -> Result<()> {
    print!("{}", report.markdown());
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        vmunet_data::write_atomic(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Runs `vmunet eval`.
pub fn run(a: Args) -> Result<()> {
    if let Some(truth) = a.truth.clone() {
        return run_volumes(&a, &truth);
    }
    let Some(data) = a.data.clone() else {
        anyhow::bail!("give --data DIR, or --pred / --source with --truth");
    };
    let opts = EvalOptions {
        size: a.size,
        batch_size: a.batch_size,
        max_images: a.max_images,
        threshold: a.threshold,
    };
    let progress = |i, n| eprintln!("case {i}/{n}");
    let report = match (&a.checkpoint, &a.model) {
        (Some(ck), _) => evaluate_checkpoint(ck, &data, &opts, progress)
            .with_context(|| format!("evaluating {}", ck.display()))?,
        (None, Some(path)) => {
            let options = SessionOptions {
                runtime: a.runtime,
                profile: crate::args::load_profile(a.profile.as_deref())?,
                ..Default::default()
            };
            let mut session = Session::open(path, &options)
                .with_context(|| format!("opening {}", path.display()))?;
            evaluate_session(&mut session, &data, &opts, progress)?
        }
        (None, None) => anyhow::bail!("give --checkpoint FILE or --model FILE.onnx"),
    };
    print_report(&report, a.json.as_deref())
}
