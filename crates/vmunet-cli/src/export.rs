//! `vmunet export`: checkpoint to ONNX with standard operators.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_onnx::{export, write, ExportOptions, DEFAULT_OPSET};

use crate::util::ModelSource;

/// Arguments of `vmunet export`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: ModelSource,
    /// Output ONNX file.
    #[arg(short, long, value_name = "model.onnx")]
    output: PathBuf,
    /// ONNX opset (17 or newer: LayerNormalization is native).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// Input height and width (a multiple of 32); the batch axis stays dynamic.
    #[arg(long, default_value_t = 256)]
    size: usize,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.source.load()?;
    let mut opts = ExportOptions {
        height: a.size,
        width: a.size,
        opset: a.opset,
        ..Default::default()
    };
    opts.metadata
        .push(("vmunet.source".into(), loaded.label.clone()));
    if let Some(ck) = &a.source.checkpoint {
        opts.metadata
            .push(("vmunet.source_sha256".into(), sha256_hex(ck)?));
    }
    let proto = export(&loaded.model, &loaded.config, &opts)?;
    let nodes = proto.graph.as_ref().map_or(0, |g| g.node.len());
    write(&proto, &a.output).with_context(|| format!("writing {}", a.output.display()))?;
    let bytes = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} (opset {}, input [batch, {}, {}, {}], {} nodes, {:.1} MB)",
        a.output.display(),
        a.opset,
        loaded.config.input_channels,
        a.size,
        a.size,
        nodes,
        bytes as f64 / 1e6
    );
    Ok(())
}

/// SHA-256 of a file, lowercase hex (recorded so a deployed model names its checkpoint).
fn sha256_hex(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
