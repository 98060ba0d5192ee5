//! Which burn backend trains: the CPU (ndarray, the scan's host kernels), or with the `wgpu` /
//! `cuda` features a GPU (the CubeCL scan kernel).

use burn::backend::Autodiff;
use vmunet_model::CpuBackend;

use crate::{Observer, RunSummary, TrainConfig, TrainError};

/// Training backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// burn-ndarray on the CPU.
    Cpu,
    /// burn-wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// burn-cuda (NVIDIA).
    Cuda,
}

impl Backend {
    /// The name on the command line (`cpu`, `wgpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `cfg` (a new run, or with `resume` the run in `cfg.out` from its last committed epoch)
/// on `backend`, reporting progress to `observer`.
pub fn train_on(
    backend: Backend,
    cfg: TrainConfig,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    match backend {
        Backend::Cpu => {
            crate::train::<Autodiff<CpuBackend>>(cfg, resume, &Default::default(), observer)
        }
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => crate::train::<Autodiff<burn::backend::Wgpu>>(
            cfg,
            resume,
            &Default::default(),
            observer,
        ),
        #[cfg(feature = "cuda")]
        Backend::Cuda => crate::train::<Autodiff<burn::backend::Cuda>>(
            cfg,
            resume,
            &Default::default(),
            observer,
        ),
        #[allow(unreachable_patterns)]
        other => Err(TrainError::Config {
            origin: "--backend".into(),
            reason: format!(
                "this vmunet was built without the {other} backend: rebuild with \
                 `cargo build --release -p vmunet-cli --features {other}`"
            ),
        }),
    }
}
