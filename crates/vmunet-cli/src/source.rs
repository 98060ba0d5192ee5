//! Where a burn model comes from: a checkpoint file or a preset (builds with burn only).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use vmunet_model::checkpoint::{self, CheckpointInfo};
use vmunet_model::{CpuBackend, VmUnet, VmUnetConfig};

/// Built-in configurations.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    /// The paper's VM-UNet (dims 96..768, 27.4 M parameters for one class).
    Paper,
    /// The narrow variant of the official-small fixtures (dims 24..192).
    Small,
}

impl Preset {
    pub fn config(self, num_classes: usize) -> VmUnetConfig {
        match self {
            Preset::Paper => VmUnetConfig::paper(num_classes),
            Preset::Small => VmUnetConfig::small(num_classes),
        }
    }
}

/// Where a model comes from: a checkpoint file or a preset with fresh weights.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelSource {
    /// Checkpoint: official PyTorch .pth, .safetensors, or a vmunet .bpk record.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Use a built-in configuration with freshly initialised weights instead.
    #[arg(long, value_enum, conflicts_with = "checkpoint")]
    pub preset: Option<Preset>,
    /// Classes for --preset.
    #[arg(long, default_value_t = 1, requires = "preset")]
    pub num_classes: usize,
}

/// A loaded model and where it came from.
pub struct Loaded {
    pub model: VmUnet<CpuBackend>,
    pub config: VmUnetConfig,
    pub info: Option<CheckpointInfo>,
    pub label: String,
}

impl Loaded {
    /// The input size the checkpoint was trained at, when it records one.
    pub fn input_size(&self) -> Option<usize> {
        self.info.as_ref().and_then(|i| i.input_size)
    }
}

impl ModelSource {
    pub fn load(&self) -> Result<Loaded> {
        let device = Default::default();
        match (&self.checkpoint, self.preset) {
            (Some(path), _) => {
                let (model, info) = checkpoint::load::<CpuBackend>(path, &device)
                    .with_context(|| format!("loading checkpoint {}", path.display()))?;
                Ok(Loaded {
                    model,
                    config: info.config.clone(),
                    label: path.display().to_string(),
                    info: Some(info),
                })
            }
            (None, Some(p)) => {
                let config = p.config(self.num_classes);
                let model = config.init::<CpuBackend>(&device)?;
                Ok(Loaded {
                    model,
                    config,
                    info: None,
                    label: format!("{p:?} preset (random weights)").to_lowercase(),
                })
            }
            (None, None) => anyhow::bail!("give --checkpoint FILE or --preset NAME"),
        }
    }
}

/// Thousands separators for counts.
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
