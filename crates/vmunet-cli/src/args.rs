//! Arguments several commands share: which model runs where.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_runtime::{DeviceProfile, RuntimeKind, Session, SessionOptions};

/// Where a burn model comes from: a checkpoint file or a preset with fresh weights.
#[cfg(feature = "full")]
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Checkpoint: official PyTorch .pth, .safetensors, or a vmunet .bpk record.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Use a built-in configuration with freshly initialised weights instead.
    #[arg(long, value_enum, conflicts_with = "checkpoint")]
    pub preset: Option<vmunet_model::Preset>,
    /// Classes for --preset.
    #[arg(long, default_value_t = 1, requires = "preset")]
    pub num_classes: usize,
}

#[cfg(feature = "full")]
impl SourceArgs {
    /// The source given, if any.
    pub fn source(&self) -> Option<vmunet_model::ModelSource> {
        match (&self.checkpoint, self.preset) {
            (Some(path), _) => Some(vmunet_model::ModelSource::Checkpoint(path.clone())),
            (None, Some(preset)) => Some(vmunet_model::ModelSource::Preset {
                preset,
                num_classes: self.num_classes,
            }),
            (None, None) => None,
        }
    }

    /// Loads the model given.
    pub fn load(&self) -> Result<vmunet_model::LoadedModel> {
        let source = self
            .source()
            .context("give --checkpoint FILE or --preset NAME")?;
        Ok(source.load()?)
    }
}

/// What to run: a checkpoint in burn, or an exported ONNX file in tract / ONNX Runtime
/// (chosen by `--runtime` or a device profile).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[cfg(feature = "full")]
    #[command(flatten)]
    pub source: SourceArgs,
    /// Exported ONNX model (run with --runtime tract|ort or a --profile). Default: the
    /// reference model built into the binary (models/isic2017-16-128.bpk, 128x128).
    #[cfg_attr(
        feature = "full",
        arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])
    )]
    #[cfg_attr(not(feature = "full"), arg(long, value_name = "model.onnx"))]
    pub model: Option<PathBuf>,
    /// Runtime: `tract` or `ort` for --model (default tract), `burn` for a checkpoint.
    #[arg(long)]
    pub runtime: Option<RuntimeKind>,
    /// Device profile (devices/*.toml) choosing runtime, providers, precision, threads and
    /// input size.
    #[arg(long, value_name = "PROFILE.toml", conflicts_with = "runtime")]
    pub profile: Option<PathBuf>,
}

impl EngineArgs {
    /// The session options these arguments and `threads` give (profiles set their own).
    pub fn session_options(&self, threads: Option<usize>) -> Result<SessionOptions> {
        Ok(SessionOptions {
            runtime: self.runtime,
            profile: load_profile(self.profile.as_deref())?,
            threads,
            ..Default::default()
        })
    }

    /// Opens the model with the chosen runtime; `threads` sizes ONNX Runtime's intra-op pool
    /// or tract's matrix-product pool (profiles set their own).
    ///
    /// With no model at all (no `--model`, `--checkpoint` or `--preset`), the reference model
    /// compiled into the binary runs (`vmunet_embedded::REFERENCE`, in tract unless
    /// `--runtime` or `--profile` say otherwise).
    pub fn open(&self, threads: Option<usize>) -> Result<Session> {
        let Some(path) = &self.model else {
            #[cfg(feature = "full")]
            if self.source.source().is_some() {
                if let Some(k) = self.runtime.filter(|k| *k != RuntimeKind::Burn) {
                    anyhow::bail!(
                        "--runtime {k} runs an exported ONNX file: give --model FILE.onnx"
                    );
                }
                if self.profile.is_some() {
                    anyhow::bail!("--profile runs an exported ONNX file: give --model FILE.onnx");
                }
                return Ok(vmunet_runtime::BurnRuntime::session(self.source.load()?));
            }
            if self.runtime == Some(RuntimeKind::Burn) {
                anyhow::bail!("--runtime burn runs a checkpoint: give --checkpoint FILE");
            }
            return open_embedded(&self.session_options(threads)?);
        };
        Session::open(path, &self.session_options(threads)?)
            .with_context(|| format!("opening {}", path.display()))
    }
}

impl EngineArgs {
    /// For a checkpoint run in burn (no ONNX metadata): the preprocessing its record gives
    /// (else ISIC for one class, Synapse for more) and its class names. `None` for ONNX files,
    /// whose metadata says.
    pub fn burn_model_info(&self) -> Result<Option<(vmunet_onnx_ir::Preprocessing, Vec<String>)>> {
        #[cfg(feature = "full")]
        if self.model.is_none() {
            if let Some(source) = self.source.source() {
                let (recorded, classes) = match &source {
                    vmunet_model::ModelSource::Checkpoint(p) => {
                        let info = vmunet_model::checkpoint::inspect(p)
                            .with_context(|| format!("reading {}", p.display()))?;
                        (info.preprocessing, info.config.num_classes)
                    }
                    vmunet_model::ModelSource::Preset { num_classes, .. } => (None, *num_classes),
                };
                let preprocessing = recorded.unwrap_or(if classes == 1 {
                    vmunet_onnx_ir::Preprocessing::Isic
                } else {
                    vmunet_onnx_ir::Preprocessing::Synapse
                });
                let names = vmunet_onnx_ir::default_class_names(classes, Some(preprocessing));
                return Ok(Some((preprocessing, names)));
            }
        }
        Ok(None)
    }
}

/// Opens the reference model compiled into the binary (written once to the cache folder).
pub fn open_embedded(options: &SessionOptions) -> Result<Session> {
    let model = vmunet_embedded::REFERENCE;
    let path = model.materialize()?;
    Session::open(&path, options).with_context(|| {
        format!(
            "opening the built-in model {} ({})",
            model.name,
            path.display()
        )
    })
}

/// Reads the device profile at `path`, if one is given.
pub fn load_profile(path: Option<&std::path::Path>) -> Result<Option<DeviceProfile>> {
    Ok(path.map(DeviceProfile::load).transpose()?)
}
