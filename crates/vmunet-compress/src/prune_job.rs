//! Pruning a checkpoint end to end: prune it, record what was done in the checkpoint's
//! compression history, optionally fine-tune the pruned model and record that too.

use std::path::{Path, PathBuf};

use burn::module::Module;
use vmunet_model::{checkpoint, CpuBackend, VmUnetConfig};
use vmunet_onnx_ir::CompressionStep;
use vmunet_train::{Backend, Observer, TrainConfig};

use crate::prune::{prune, PruneOptions, PruneReport, Target};
use crate::CompressError;

/// Fine-tuning of the pruned model.
#[derive(Debug, Clone)]
pub struct FineTune {
    /// Dataset (ISIC layout).
    pub data: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate (cosine to 1e-5 over the epochs).
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// The run folder (default: OUT without extension, then `-finetune`).
    pub run: Option<PathBuf>,
    /// Continue an interrupted fine-tuning run (the pruning itself is deterministic and is
    /// redone).
    pub resume: bool,
}

/// What to prune and where to write it (usable as command-line arguments with the `clap`
/// feature).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PruneJob {
    /// The checkpoint to prune (.bpk, or an official .pth / .safetensors).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub checkpoint: PathBuf,
    /// Fraction of the target to remove, in (0, 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub ratio: f64,
    /// What the ratio measures: params or flops (multiply-adds at the training size).
    #[cfg_attr(feature = "clap", arg(long, default_value = "params"))]
    pub target: Target,
    /// Also remove this fraction of every block's states (d_state), in [0, 1).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub state_ratio: f64,
    /// Input size the multiply-adds are counted at (default: the training size, else 256).
    #[cfg_attr(feature = "clap", arg(long))]
    pub size: Option<usize>,
    /// Output checkpoint (the fine-tuned one with --finetune-data).
    #[cfg_attr(feature = "clap", arg(short, long, value_name = "OUT.bpk"))]
    pub output: PathBuf,
    /// Fine-tune the pruned model on this dataset (ISIC layout) before writing OUT.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub finetune_data: Option<PathBuf>,
    /// Fine-tuning epochs.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 10, requires = "finetune_data")
    )]
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate (cosine to 1e-5 over the epochs).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 3e-4, requires = "finetune_data")
    )]
    pub finetune_lr: f64,
    /// Fine-tuning batch size.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 8, requires = "finetune_data")
    )]
    pub batch_size: usize,
    /// Where the fine-tuning run lives (default: OUT without extension, then `-finetune`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DIR", requires = "finetune_data")
    )]
    pub finetune_out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning run in the --finetune-out folder (the pruning
    /// itself is deterministic and is redone).
    #[cfg_attr(feature = "clap", arg(long, requires = "finetune_data"))]
    pub resume: bool,
}

impl PruneJob {
    /// The fine-tuning asked for (with a dataset), if any.
    pub fn finetune(&self) -> Option<FineTune> {
        Some(FineTune {
            data: self.finetune_data.clone()?,
            epochs: self.finetune_epochs,
            lr: self.finetune_lr,
            batch_size: self.batch_size,
            run: self.finetune_out.clone(),
            resume: self.resume,
        })
    }
}

/// What [`prune_checkpoint`] did.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    /// What changed.
    pub report: PruneReport,
    /// The pruned model's configuration.
    pub config: VmUnetConfig,
    /// The fine-tuning run folder, when fine-tuned.
    pub finetune_run: Option<PathBuf>,
}

impl Target {
    /// The command-line name (`params`, `flops`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Params => "params",
            Target::Flops => "flops",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "params" => Ok(Target::Params),
            "flops" => Ok(Target::Flops),
            o => Err(format!(
                "unknown pruning target `{o}` (expected params or flops)"
            )),
        }
    }
}

/// Prunes `job.checkpoint`, writes `job.output` with the step in its history, and with
/// [`PruneJob::finetune`] fine-tunes it on the CPU (progress to `observer`) and writes the fine-tuned
/// model (the run's `best.bpk`) in its place, the fine-tuning recorded in the same step.
pub fn prune_checkpoint(
    job: &PruneJob,
    observer: &mut dyn Observer,
) -> Result<PruneOutcome, CompressError> {
    let dev = Default::default();
    let (model, info) = checkpoint::load::<CpuBackend>(&job.checkpoint, &dev)?;
    let trained = info.input_size;
    let preprocessing = info.preprocessing;
    let size = job.size.or(trained).unwrap_or(256);
    let params = model.num_params();
    let opts = PruneOptions {
        ratio: job.ratio,
        target: job.target,
        state_ratio: job.state_ratio,
        size,
    };
    let (pruned, cfg, report) = prune(model, &info.config, params, &opts)?;
    let actual = pruned.num_params();
    if actual != report.params.1 {
        return Err(CompressError::Unsupported(format!(
            "internal: the pruned model has {actual} parameters, the plan {}",
            report.params.1
        )));
    }
    let mut step = provenance(job, &report)?;
    let mut history = info.history.clone();
    history.push(step.clone());
    checkpoint::save_recorded(
        &pruned,
        &job.output,
        &checkpoint::CheckpointRecord {
            input_size: trained,
            preprocessing,
            history: history.clone(),
        },
    )?;
    let Some(ft) = job.finetune() else {
        return Ok(PruneOutcome {
            report,
            config: cfg,
            finetune_run: None,
        });
    };
    let run = ft.run.clone().unwrap_or_else(|| default_run(&job.output));
    let mut tc = TrainConfig {
        data: ft.data.clone(),
        out: run.clone(),
        epochs: ft.epochs,
        batch_size: ft.batch_size,
        image_size: Some(size),
        lr: ft.lr,
        t_max: ft.epochs,
        init: Some(job.output.clone()),
        ..Default::default()
    };
    tc.model.adopt(&cfg);
    vmunet_train::train_on(Backend::Cpu, tc, ft.resume, observer)?;
    let (tuned, _) = checkpoint::load::<CpuBackend>(&run.join("best.bpk"), &dev)?;
    step.params.insert(
        "finetune".into(),
        serde_json::json!({
            "data": ft.data.display().to_string(),
            "epochs": ft.epochs,
            "lr": ft.lr,
            "batch_size": ft.batch_size,
            "run": run.display().to_string(),
            "checkpoint": "best.bpk (lowest validation loss)",
        }),
    );
    *history.last_mut().expect("the step was pushed") = step;
    checkpoint::save_recorded(
        &tuned,
        &job.output,
        &checkpoint::CheckpointRecord {
            input_size: trained,
            preprocessing,
            history,
        },
    )?;
    Ok(PruneOutcome {
        report,
        config: cfg,
        finetune_run: Some(run),
    })
}

/// OUT without extension, then `-finetune`, beside OUT.
fn default_run(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pruned".into());
    output.with_file_name(format!("{stem}-finetune"))
}

/// The compression step recorded for the pruning.
fn provenance(job: &PruneJob, report: &PruneReport) -> Result<CompressionStep, CompressError> {
    let mut step = CompressionStep {
        kind: "prune".into(),
        params: serde_json::Map::new(),
        tool: Some(format!("vmunet-compress {}", env!("CARGO_PKG_VERSION"))),
    };
    let sha = vmunet_fs::sha256_file(&job.checkpoint)?;
    let p = &mut step.params;
    p.insert("source".into(), job.checkpoint.display().to_string().into());
    p.insert("source_sha256".into(), sha.into());
    p.insert("ratio".into(), job.ratio.into());
    p.insert("target".into(), job.target.name().into());
    p.insert("state_ratio".into(), job.state_ratio.into());
    p.insert(
        "importance".into(),
        "weight magnitude: channels (|in_x| + |in_z|) * |out_norm| * |out_proj|; states |B| * |C|"
            .into(),
    );
    p.insert("params_before".into(), report.params.0.into());
    p.insert("params_after".into(), report.params.1.into());
    p.insert("channel_keep".into(), report.channel_keep.into());
    Ok(step)
}
