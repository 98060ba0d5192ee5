//! `vmunet export`: checkpoint to ONNX with standard operators.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_onnx::{export, write, ExportOptions, ScanForm, DEFAULT_CHUNK, DEFAULT_OPSET};

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
    #[arg(long, default_value_t = 256, conflicts_with = "dynamic_hw")]
    size: usize,
    /// Leave height and width symbolic: one file for every input size (multiples of 32).
    #[arg(long)]
    dynamic_hw: bool,
    /// With --dynamic-hw and --scan chunked: the largest input side the file must support.
    #[arg(long, default_value_t = 1024, value_name = "PIXELS")]
    max_size: usize,
    /// Selective-scan formulation: `scan` (ONNX Scan loop, standard ops, best on CPU),
    /// `chunked` (no control flow, for TensorRT and other graph compilers) or `custom`
    /// (the ai.vmunet::SelectiveScan operator, fastest; needs vmunet's tract or ort runtimes).
    #[arg(long, default_value = "scan")]
    scan: ScanForm,
    /// Chunk length of `--scan chunked`.
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "L")]
    chunk: usize,
    /// Class names, one per output channel, comma-separated (recorded in the metadata).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    class_names: Option<Vec<String>>,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.source.load()?;
    let mut opts = ExportOptions {
        height: a.size,
        width: a.size,
        opset: a.opset,
        scan: a.scan,
        chunk: a.chunk,
        dynamic_hw: a.dynamic_hw,
        max_size: a.max_size,
        class_names: a.class_names.clone(),
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
    let hw = if a.dynamic_hw {
        "height, width".to_string()
    } else {
        format!("{}, {}", a.size, a.size)
    };
    println!(
        "wrote {} (opset {}, scan `{}`, input [batch, {}, {hw}], {} nodes, {:.1} MB)",
        a.output.display(),
        a.opset,
        a.scan,
        loaded.config.input_channels,
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
