//! Helpers shared by the commands.

use std::path::{Path, PathBuf};

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

/// Creates `dir` (and parents) with a clear error.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
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

/// Peak resident set size of this process in bytes (Linux), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What to run: a checkpoint in burn, or an exported ONNX file in tract / ONNX Runtime
/// (chosen by `--runtime` or a device profile).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Exported ONNX model (run with --runtime tract|ort or a --profile).
    #[arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])]
    pub model: Option<PathBuf>,
    /// Runtime: `tract` or `ort` for --model (default tract), `burn` for a checkpoint.
    #[arg(long)]
    pub runtime: Option<vmunet_runtime::RuntimeKind>,
    /// Device profile (devices/*.toml) choosing runtime, providers, precision, threads and
    /// input size.
    #[arg(
        long,
        value_name = "PROFILE.toml",
        requires = "model",
        conflicts_with = "runtime"
    )]
    pub profile: Option<PathBuf>,
}

/// An opened runtime and what is known of its input.
pub struct Engine {
    pub runtime: Box<dyn vmunet_runtime::Runtime>,
    /// Input channels.
    pub channels: usize,
    /// Fixed (H, W) of the model input, if the model has one.
    pub fixed_size: Option<(usize, usize)>,
    /// The profile, if one was given.
    pub profile: Option<vmunet_runtime::DeviceProfile>,
    /// The ONNX file's metadata (empty for burn).
    pub metadata: vmunet_onnx_ir::ModelMetadata,
    /// Where the model came from.
    pub label: String,
}

impl EngineArgs {
    /// Opens the model with the chosen runtime.
    pub fn open(&self) -> Result<Engine> {
        self.open_with_threads(None)
    }

    /// Opens the model; `threads` sizes ONNX Runtime's intra-op pool or tract's matrix-product
    /// pool (profiles set their own).
    pub fn open_with_threads(&self, threads: Option<usize>) -> Result<Engine> {
        use vmunet_runtime::{ModelDim, ModelFile, RuntimeKind};
        let Some(path) = &self.model else {
            if let Some(k) = self.runtime.filter(|k| *k != RuntimeKind::Burn) {
                anyhow::bail!(
                    "--runtime {} runs an exported ONNX file: give --model FILE.onnx",
                    k.as_str()
                );
            }
            let loaded = self.source.load()?;
            return Ok(Engine {
                channels: loaded.config.input_channels,
                runtime: Box::new(vmunet_runtime::BurnRuntime::new(loaded.model)),
                fixed_size: None,
                profile: None,
                metadata: Default::default(),
                label: loaded.label,
            });
        };
        let profile = match &self.profile {
            Some(p) => Some(vmunet_runtime::DeviceProfile::load(p)?),
            None => None,
        };
        let file = ModelFile::read(path)?;
        let (runtime, profile) = match profile {
            Some(profile) => {
                let rt = vmunet_runtime::open_with_profile(path, &profile)
                    .with_context(|| format!("opening {}", path.display()))?;
                (rt, Some(profile))
            }
            None => {
                let kind = self.runtime.unwrap_or(RuntimeKind::Tract);
                let rt: Box<dyn vmunet_runtime::Runtime> = match (kind, threads) {
                    (RuntimeKind::Ort, Some(t)) => Box::new(vmunet_runtime::OrtRuntime::open(
                        path,
                        &vmunet_runtime::OrtOptions {
                            threads: Some(t),
                            ..Default::default()
                        },
                    )?),
                    (RuntimeKind::Tract, Some(t)) => {
                        Box::new(vmunet_runtime::TractRuntime::open_with_threads(path, t)?)
                    }
                    _ => vmunet_runtime::open(kind, path)?,
                };
                (rt, None)
            }
        };
        let fixed = |i: usize| match file.input.dims.get(i) {
            Some(ModelDim::Fixed(v)) => Some(*v),
            _ => None,
        };
        let channels = fixed(1).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: input {} has no fixed channel count",
                path.display(),
                file.input
            )
        })?;
        Ok(Engine {
            runtime,
            channels,
            fixed_size: fixed(2).zip(fixed(3)),
            profile,
            metadata: file.metadata.clone(),
            label: path.display().to_string(),
        })
    }
}

impl Engine {
    /// The scan formulation recorded in the export (`scan`, `chunked`, `custom`).
    pub fn scan_form(&self) -> Option<String> {
        let form = self.metadata.scan?;
        Some(match self.metadata.chunk {
            Some(c) => format!("{form} ({c})"),
            None => form.to_string(),
        })
    }

    /// The input (H, W): the model's own when fixed, else `requested`, else the profile's, else
    /// 256.
    pub fn input_size(&self, requested: Option<usize>) -> Result<(usize, usize)> {
        match (self.fixed_size, requested) {
            (Some(hw), Some(s)) if hw != (s, s) => anyhow::bail!(
                "--size {s} does not fit {}: its input is fixed at {}x{}",
                self.label,
                hw.0,
                hw.1
            ),
            (Some(hw), _) => Ok(hw),
            (None, Some(s)) => Ok((s, s)),
            (None, None) => {
                let s = self.profile.as_ref().map_or(256, |p| p.input_size);
                Ok((s, s))
            }
        }
    }
}
