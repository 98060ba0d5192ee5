//! `vmunet train`: the paper's recipe from a TOML file, with command-line overrides.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_train::{Backend, EpochRecord, Observer, TrainConfig, TrainOverrides};

/// Arguments of `vmunet train`.
#[derive(clap::Args)]
pub struct Args {
    /// Training configuration (TOML); every key has the paper's default.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: TrainOverrides,
    /// Continue the run in --out from its last committed epoch.
    #[arg(long)]
    resume: bool,
    /// No progress bars (one line per epoch).
    #[arg(long)]
    quiet: bool,
    /// Backend: cpu (ndarray), wgpu or cuda (CubeCL scan kernel; builds with `--features`).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

/// Progress: a bar on a terminal; on a pipe or log file, a plain line every tenth of an epoch.
pub struct Bars {
    quiet: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
    epoch: (usize, usize),
    steps: usize,
}

impl Bars {
    /// Progress on standard error (`quiet`: the per-epoch lines only).
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            epoch: (0, 0),
            steps: 0,
        }
    }
}

impl Observer for Bars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize, lr: f64) {
        self.epoch = (epoch, epochs);
        self.steps = steps;
        if self.quiet || !self.terminal {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} steps, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{epoch}/{epochs} (lr {lr:.2e})"));
        self.bar = Some(bar);
    }
    fn step(&mut self, step: usize, loss: f64, ips: f64) {
        if let Some(b) = &self.bar {
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}, {ips:.1} img/s"));
        } else if !self.quiet
            && (step.is_multiple_of(self.steps.div_ceil(10).max(1)) || step == self.steps)
        {
            eprintln!(
                "epoch {}/{} step {step}/{}: loss {loss:.4}, {ips:.1} img/s",
                self.epoch.0, self.epoch.1, self.steps
            );
        }
    }
    fn validation_start(&mut self, batches: usize) {
        if let Some(b) = &self.bar {
            b.set_message(format!("validating ({batches} batches)"));
        }
    }
    fn epoch_end(&mut self, r: &EpochRecord, best: bool) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        println!("{}", r.summary(best));
    }
}

/// Runs `vmunet train` on the chosen backend.
pub fn run(a: Args) -> Result<()> {
    let cfg = TrainConfig::with_overrides(a.config.as_deref(), &a.overrides)?;
    let origin = a
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "command line".into());
    if !a.resume {
        cfg.validate(&origin)?;
    }
    let out = cfg.out.clone();
    let summary = vmunet_train::train_on(a.backend, cfg, a.resume, &mut Bars::new(a.quiet))
        .with_context(|| format!("training run {}", out.display()))?;
    println!("{}", summary.summary());
    Ok(())
}
