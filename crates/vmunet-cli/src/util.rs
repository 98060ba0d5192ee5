//! Helpers shared by the commands.

use std::path::{Path, PathBuf};

#[cfg(feature = "full")]
use crate::source::ModelSource;
use anyhow::{Context, Result};
use vmunet_runtime::{Session, SessionOptions};

/// Creates `dir` (and parents) with a clear error.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
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
    #[cfg(feature = "full")]
    #[command(flatten)]
    pub source: ModelSource,
    /// Exported ONNX model (run with --runtime tract|ort or a --profile).
    #[cfg_attr(
        feature = "full",
        arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])
    )]
    #[cfg_attr(
        not(feature = "full"),
        arg(long, value_name = "model.onnx", required = true)
    )]
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

impl EngineArgs {
    /// Opens the model with the chosen runtime; `threads` sizes ONNX Runtime's intra-op pool
    /// or tract's matrix-product pool (profiles set their own).
    pub fn open(&self, threads: Option<usize>) -> Result<Session> {
        use vmunet_runtime::RuntimeKind;
        let Some(path) = &self.model else {
            if let Some(k) = self.runtime.filter(|k| *k != RuntimeKind::Burn) {
                anyhow::bail!(
                    "--runtime {} runs an exported ONNX file: give --model FILE.onnx",
                    k.as_str()
                );
            }
            #[cfg(feature = "full")]
            {
                let loaded = self.source.load()?;
                let trained = loaded.input_size();
                return Ok(Session::from_runtime(
                    Box::new(vmunet_runtime::BurnRuntime::new(loaded.model)),
                    loaded.config.input_channels,
                    loaded.label,
                )
                .with_trained_size(trained));
            }
            #[cfg(not(feature = "full"))]
            anyhow::bail!("give --model FILE.onnx");
        };
        let profile = match &self.profile {
            Some(p) => Some(vmunet_runtime::DeviceProfile::load(p)?),
            None => None,
        };
        let options = SessionOptions {
            runtime: self.runtime,
            profile,
            threads,
        };
        Session::open(path, &options).with_context(|| format!("opening {}", path.display()))
    }
}

/// The scan formulation recorded in an export (`scan`, `chunked (64)`, `custom`).
pub fn scan_form_label(session: &Session) -> Option<String> {
    let metadata = &session.file()?.metadata;
    let form = metadata.scan?;
    Some(match metadata.chunk {
        Some(c) => format!("{form} ({c})"),
        None => form.to_string(),
    })
}
