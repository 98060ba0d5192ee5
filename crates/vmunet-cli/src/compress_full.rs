//! `vmunet compress prune` and `vmunet compress report` (checkpoints: the full build only).

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_compress::prune::Target;
use vmunet_compress::{FineTune, PruneJob, ReportJob};

/// Arguments of `vmunet compress prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// The checkpoint to prune (.bpk, or an official .pth / .safetensors).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Fraction of the target to remove, in (0, 1).
    #[arg(long)]
    ratio: f64,
    /// What the ratio measures: params or flops (multiply-adds at the training size).
    #[arg(long, default_value = "params")]
    target: Target,
    /// Also remove this fraction of every block's states (d_state), in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    state_ratio: f64,
    /// Input size the multiply-adds are counted at (default: the training size, else 256).
    #[arg(long)]
    size: Option<usize>,
    /// Output checkpoint (the fine-tuned one with --finetune-data).
    #[arg(short, long, value_name = "OUT.bpk")]
    output: PathBuf,
    /// Fine-tune the pruned model on this dataset (ISIC layout) before writing OUT.
    #[arg(long, value_name = "DIR")]
    finetune_data: Option<PathBuf>,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 10, requires = "finetune_data")]
    finetune_epochs: usize,
    /// Fine-tuning learning rate (cosine to 1e-5 over the epochs).
    #[arg(long, default_value_t = 3e-4, requires = "finetune_data")]
    finetune_lr: f64,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 8, requires = "finetune_data")]
    batch_size: usize,
    /// Where the fine-tuning run lives (default: OUT without extension, then `-finetune`).
    #[arg(long, value_name = "DIR", requires = "finetune_data")]
    finetune_out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning run in the --finetune-out folder (the pruning
    /// itself is deterministic and is redone).
    #[arg(long, requires = "finetune_data")]
    resume: bool,
    /// No per-epoch output.
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `vmunet compress prune`.
pub fn prune(a: PruneArgs) -> Result<()> {
    let job = PruneJob {
        checkpoint: a.checkpoint.clone(),
        ratio: a.ratio,
        target: a.target,
        state_ratio: a.state_ratio,
        size: a.size,
        output: a.output.clone(),
        finetune: a.finetune_data.clone().map(|data| FineTune {
            data,
            epochs: a.finetune_epochs,
            lr: a.finetune_lr,
            batch_size: a.batch_size,
            run: a.finetune_out.clone(),
            resume: a.resume,
        }),
    };
    let mut progress = crate::train::Bars::new(a.quiet);
    let outcome = vmunet_compress::prune_checkpoint(&job, &mut progress)
        .with_context(|| format!("pruning {}", a.checkpoint.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome.report)?);
        return Ok(());
    }
    print!("{}", outcome.report.summary(&a.checkpoint, a.state_ratio));
    println!(
        "wrote {} (config: {} blocks with their own widths)",
        a.output.display(),
        outcome.config.block_names().len()
    );
    if let Some(run) = &outcome.finetune_run {
        println!(
            "fine-tuned: {} (the run's best.bpk; log and metrics in {})",
            a.output.display(),
            run.display()
        );
    }
    Ok(())
}

/// Runs `vmunet compress report`.
pub fn report(job: ReportJob) -> Result<()> {
    let r = vmunet_compress::compression_report(&job, &mut |line| eprintln!("{line}"))?;
    print!("{}", r.markdown);
    println!(
        "wrote {0}/report.md, {0}/report.json, {0}/report.png and the models",
        r.out.display()
    );
    Ok(())
}
