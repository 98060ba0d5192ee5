//! Where a model comes from: a checkpoint file (official `.pth`, safetensors, a vmunet `.bpk`)
//! or a preset configuration with freshly initialised weights.

use std::path::PathBuf;

use crate::checkpoint::{self, CheckpointError, CheckpointInfo};
use crate::{CpuBackend, ModelError, VmUnet, VmUnetConfig};

/// Built-in configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Preset {
    /// The paper's VM-UNet (dims 96..768, 27.4 M parameters for one class).
    Paper,
    /// The narrow variant of the official-small fixtures (dims 24..192).
    Small,
}

impl Preset {
    /// The configuration with `num_classes` output classes.
    pub fn config(self, num_classes: usize) -> VmUnetConfig {
        match self {
            Preset::Paper => VmUnetConfig::paper(num_classes),
            Preset::Small => VmUnetConfig::small(num_classes),
        }
    }

    /// The preset's name (`paper`, `small`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Small => "small",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A model to load: a checkpoint file, or a preset with fresh weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A checkpoint file.
    Checkpoint(PathBuf),
    /// A preset configuration, freshly initialised.
    Preset {
        /// Which.
        preset: Preset,
        /// Output classes.
        num_classes: usize,
    },
}

/// A model that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The checkpoint cannot be read.
    #[error("loading checkpoint {}", path.display())]
    Checkpoint {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: CheckpointError,
    },
    /// The preset's configuration cannot be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The checkpoint cannot be written.
    #[error("writing {}", path.display())]
    Save {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: CheckpointError,
    },
}

/// `preset` with `num_classes` classes, freshly initialised from `seed` (the official
/// initialisation) and saved as a checkpoint at `path`; returns its parameter count.
pub fn init_checkpoint(
    preset: Preset,
    num_classes: usize,
    seed: u64,
    path: &std::path::Path,
) -> Result<usize, SourceError> {
    use burn::module::Module;
    use burn::tensor::backend::Backend;
    let device = Default::default();
    CpuBackend::seed(&device, seed);
    let model = preset.config(num_classes).init::<CpuBackend>(&device)?;
    checkpoint::save(&model, path).map_err(|source| SourceError::Save {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(model.num_params())
}

/// A loaded model (burn, CPU) and where it came from.
pub struct LoadedModel {
    /// The network.
    pub model: VmUnet<CpuBackend>,
    /// Its configuration.
    pub config: VmUnetConfig,
    /// What the checkpoint file records (None for a preset).
    pub info: Option<CheckpointInfo>,
    /// The checkpoint's path, or `paper preset (random weights)`.
    pub label: String,
}

impl LoadedModel {
    /// The input size the checkpoint was trained at, when it records one.
    pub fn input_size(&self) -> Option<usize> {
        self.info.as_ref().and_then(|i| i.input_size)
    }

    /// The checkpoint file, for a model loaded from one.
    pub fn checkpoint(&self) -> Option<&std::path::Path> {
        self.info.as_ref().map(|i| i.path.as_path())
    }
}

impl ModelSource {
    /// Loads the model on the CPU backend.
    pub fn load(&self) -> Result<LoadedModel, SourceError> {
        let device = Default::default();
        match self {
            ModelSource::Checkpoint(path) => {
                let (model, info) =
                    checkpoint::load::<CpuBackend>(path, &device).map_err(|source| {
                        SourceError::Checkpoint {
                            path: path.clone(),
                            source,
                        }
                    })?;
                Ok(LoadedModel {
                    model,
                    config: info.config.clone(),
                    label: path.display().to_string(),
                    info: Some(info),
                })
            }
            ModelSource::Preset {
                preset,
                num_classes,
            } => {
                let config = preset.config(*num_classes);
                let model = config.init::<CpuBackend>(&device)?;
                Ok(LoadedModel {
                    model,
                    config,
                    info: None,
                    label: format!("{preset} preset (random weights)"),
                })
            }
        }
    }
}

impl LoadedModel {
    /// Configuration, parameters and stage shapes at `size` x `size`, one item a line.
    pub fn summary(&self, size: usize) -> String {
        use burn::module::Module;
        let cfg = &self.config;
        let mut s = format!("model:        VM-UNet ({})\n", self.label);
        if let Some(info) = &self.info {
            s += &format!(
                "format:       {} ({} tensors)\n",
                info.format,
                info.shapes.len()
            );
        }
        s += &format!(
            "parameters:   {}\n",
            crate::format_count(self.model.num_params())
        );
        if let Some(t) = self.input_size() {
            s += &format!("trained at:   {t}x{t} (eval, export and infer default to it)\n");
        }
        s += &format!(
            "input:        N x {} x H x W, H and W multiples of {}\n",
            cfg.input_channels,
            cfg.size_multiple()
        );
        s += &format!(
            "classes:      {} ({})\n",
            cfg.num_classes,
            self.model.activation().as_str()
        );
        s += &format!(
            "dims:         {:?} (decoder {:?})\n",
            cfg.dims,
            cfg.dims_decoder()
        );
        s += &format!(
            "depths:       encoder {:?}, decoder {:?}\n",
            cfg.depths, cfg.depths_decoder
        );
        s += &format!(
            "ssm:          d_state {}, d_conv {}, expand {}, dt_rank {}\n",
            cfg.d_state,
            cfg.d_conv,
            cfg.ssm_expand,
            cfg.dt_rank
                .map_or("ceil(C/16)".to_string(), |r| r.to_string())
        );
        s += &format!("stages at {size}x{size}:\n");
        s += &format!(
            "  {:<10} {:>8} {:>11} {:>7} {:>8} {:>8}\n",
            "stage", "channels", "size", "blocks", "d_inner", "dt_rank"
        );
        for st in cfg.stage_shapes(size, size) {
            s += &format!(
                "  {:<10} {:>8} {:>11} {:>7} {:>8} {:>8}\n",
                st.name,
                st.channels,
                format!("{}x{}", st.height, st.width),
                st.blocks,
                st.d_inner,
                st.dt_rank
            );
        }
        s
    }

    /// [`LoadedModel::summary`] as JSON.
    pub fn summary_json(&self, size: usize) -> serde_json::Value {
        use burn::module::Module;
        let stages = self.config.stage_shapes(size, size);
        serde_json::json!({
            "source": self.label,
            "format": self.info.as_ref().map(|i| i.format.to_string()),
            "parameters": self.model.num_params(),
            "input_size": self.input_size(),
            "config": serde_json::to_value(&self.config).unwrap_or_default(),
            "stages": stages.iter().map(|s| serde_json::json!({
                "name": s.name, "channels": s.channels, "height": s.height, "width": s.width,
                "blocks": s.blocks, "d_inner": s.d_inner, "dt_rank": s.dt_rank,
            })).collect::<Vec<_>>(),
        })
    }
}
