//! `vmunet compress prune` and `vmunet compress report` (checkpoints: the full build only).

use anyhow::{Context, Result};
use vmunet_compress::{PruneJob, ReportJob};

/// Arguments of `vmunet compress prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    job: PruneJob,
    /// No per-epoch output.
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `vmunet compress prune`.
pub fn prune(a: PruneArgs) -> Result<()> {
    let job = &a.job;
    let mut progress = crate::train::Bars::new(a.quiet);
    let outcome = vmunet_compress::prune_checkpoint(job, &mut progress)
        .with_context(|| format!("pruning {}", job.checkpoint.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome.report)?);
        return Ok(());
    }
    print!(
        "{}",
        outcome.report.summary(&job.checkpoint, job.state_ratio)
    );
    println!(
        "wrote {} (config: {} blocks with their own widths)",
        job.output.display(),
        outcome.config.block_names().len()
    );
    if let Some(run) = &outcome.finetune_run {
        println!(
            "fine-tuned: {} (the run's best.bpk; log and metrics in {})",
            job.output.display(),
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
