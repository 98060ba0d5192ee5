//! `vmunet train`: the paper's recipe from a TOML file, with command-line overrides.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_model::CpuBackend;
use vmunet_train::{EpochRecord, Observer, TrainConfig};

/// Arguments of `vmunet train`.
#[derive(clap::Args)]
pub struct Args {
    /// Training configuration (TOML); every key has the paper's default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset folder (ISIC layout or Synapse npz/h5 layout).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder: checkpoints (last.bpk, best.bpk), metrics.csv/json, curves.png.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Channel widths of the four stages, e.g. 16,32,64,128 (the paper: 96,192,384,768).
    #[arg(long, value_delimiter = ',')]
    dims: Option<Vec<usize>>,
    /// Input size (square; default 256 for ISIC, 224 for Synapse).
    #[arg(long)]
    image_size: Option<usize>,
    /// Stop after this many optimizer steps in all.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Validate on at most this many images.
    #[arg(long)]
    max_val_images: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of every random choice.
    #[arg(long)]
    seed: Option<u64>,
    /// Threads decoding and augmenting images.
    #[arg(long)]
    workers: Option<usize>,
    /// Initial weights: official VM-UNet or VMamba ImageNet .pth, or a vmunet checkpoint.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the run in --out from its last committed epoch.
    #[arg(long)]
    resume: bool,
    /// No progress bars (one line per epoch).
    #[arg(long)]
    quiet: bool,
    /// Backend: cpu (ndarray), wgpu or cuda (CubeCL scan kernel; builds with `--features`).
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,
}

/// Training backends.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BackendKind {
    /// burn-ndarray on the CPU.
    Cpu,
    /// burn-wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// burn-cuda (NVIDIA).
    Cuda,
}

impl Args {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => TrainConfig::from_file(p)?,
            None => TrainConfig::default(),
        };
        if let Some(v) = &self.data {
            c.data = v.clone();
        }
        if let Some(v) = &self.out {
            c.out = v.clone();
        }
        if let Some(v) = self.epochs {
            c.epochs = v;
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if let Some(v) = &self.dims {
            c.model.dims = v.clone();
        }
        if self.image_size.is_some() {
            c.image_size = self.image_size;
        }
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        if self.max_val_images.is_some() {
            c.max_val_images = self.max_val_images;
        }
        if let Some(v) = self.lr {
            c.lr = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.workers {
            c.workers = v;
        }
        if self.init.is_some() {
            c.init = self.init.clone();
        }
        Ok(c)
    }
}

/// Progress: a bar on a terminal; on a pipe or log file, a plain line every tenth of an epoch.
struct Bars {
    quiet: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
    epoch: (usize, usize),
    steps: usize,
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
        let val = match (r.val_loss, r.val) {
            (Some(l), Some(m)) => format!(
                " val_loss {l:.4} DSC {:.4} mIoU {:.4} Acc {:.4} Sen {:.4} Spe {:.4}",
                m.dsc, m.miou, m.acc, m.sen, m.spe
            ),
            _ => String::new(),
        };
        println!(
            "epoch {:>3}: lr {:.2e} train_loss {:.4}{val} ({:.1} s, {:.1} img/s){}",
            r.epoch,
            r.lr,
            r.train_loss,
            r.seconds,
            r.images_per_s,
            if best { " *best" } else { "" }
        );
    }
}

/// Runs `vmunet train` on the CPU backend (ndarray + autodiff).
pub fn run(a: Args) -> Result<()> {
    let cfg = a.config()?;
    let origin = a
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "command line".into());
    if !a.resume {
        cfg.validate(&origin)?;
    }
    let out = cfg.out.clone();
    let summary = run_config(cfg, a.resume, a.quiet, a.backend)?;
    let s = &summary.state;
    println!(
        "run {}: {} epochs, {} steps; best epoch {}; checkpoints last.bpk, best.bpk; metrics.csv, curves.png",
        out.display(),
        s.epochs_done,
        s.global_step,
        s.best
            .map(|(e, l)| format!("{e} (val_loss {l:.4})"))
            .unwrap_or_else(|| "-".into())
    );
    Ok(())
}

/// Runs a training configuration on `backend` with progress output (also the fine-tuning of
/// `vmunet compress prune`).
pub fn run_config(
    cfg: TrainConfig,
    resume: bool,
    quiet: bool,
    backend: BackendKind,
) -> Result<vmunet_train::RunSummary> {
    let out = cfg.out.clone();
    let mut obs = Bars {
        quiet,
        terminal: std::io::stderr().is_terminal(),
        bar: None,
        epoch: (0, 0),
        steps: 0,
    };
    let summary = match backend {
        BackendKind::Cpu => {
            vmunet_train::train::<Autodiff<CpuBackend>>(cfg, resume, &Default::default(), &mut obs)
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => vmunet_train::train::<Autodiff<burn::backend::Wgpu>>(
            cfg,
            resume,
            &Default::default(),
            &mut obs,
        ),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => vmunet_train::train::<Autodiff<burn::backend::Cuda>>(
            cfg,
            resume,
            &Default::default(),
            &mut obs,
        ),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!(
            "this vmunet was built without the {other:?} backend: rebuild with \
             `cargo build --release -p vmunet-cli --features {}`",
            format!("{other:?}").to_lowercase()
        ),
    }
    .with_context(|| format!("training run {}", out.display()))?;
    Ok(summary)
}
