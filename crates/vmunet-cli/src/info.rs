//! `vmunet info`: a checkpoint's (or preset's) architecture, or an ONNX file's input, metadata
//! and history.

use std::path::PathBuf;

use anyhow::Result;

#[cfg(feature = "full")]
use crate::args::SourceArgs;

/// Arguments of `vmunet info`.
#[derive(clap::Args)]
pub struct Args {
    #[cfg(feature = "full")]
    #[command(flatten)]
    source: SourceArgs,
    /// An exported (or compressed) ONNX model: show its input and metadata.
    #[cfg_attr(
        feature = "full",
        arg(long, value_name = "model.onnx", conflicts_with_all = ["checkpoint", "preset"])
    )]
    #[cfg_attr(
        not(feature = "full"),
        arg(long, value_name = "model.onnx", required_unless_present = "system")
    )]
    model: Option<PathBuf>,
    /// Show this build and machine instead: version, target, the scan kernels' instruction set,
    /// the runtimes and execution providers compiled in.
    #[arg(long, conflicts_with = "model")]
    system: bool,
    /// Input size (H = W) for the stage shapes (default: the size the checkpoint was trained
    /// at, else 256).
    #[arg(long)]
    size: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `vmunet info`.
pub fn run(a: Args) -> Result<()> {
    let (text, json) = if a.system {
        let features: Vec<&str> = [
            ("full", cfg!(feature = "full")),
            ("deploy", cfg!(feature = "deploy")),
            ("wgpu", cfg!(feature = "wgpu")),
            ("cuda", cfg!(feature = "cuda")),
            ("ort-cuda", cfg!(feature = "ort-cuda")),
            ("ort-tensorrt", cfg!(feature = "ort-tensorrt")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let info = vmunet_runtime::SystemInfo::this(env!("CARGO_PKG_VERSION"), &features);
        (info.summary(), serde_json::to_value(&info)?)
    } else if let Some(path) = &a.model {
        let file = vmunet_runtime::ModelFile::read(path)?;
        (file.summary(), file.summary_json())
    } else {
        #[cfg(feature = "full")]
        {
            let loaded = a.source.load()?;
            let size = a.size.or(loaded.input_size()).unwrap_or(256);
            (loaded.summary(size), loaded.summary_json(size))
        }
        #[cfg(not(feature = "full"))]
        anyhow::bail!("give --model FILE.onnx");
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{text}");
    }
    Ok(())
}
