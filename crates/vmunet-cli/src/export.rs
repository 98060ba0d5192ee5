//! `vmunet export`: checkpoint to ONNX with standard operators.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_onnx::{export, write, ExportOptions, ScanForm, DEFAULT_CHUNK, DEFAULT_OPSET};

use crate::source::ModelSource;

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
    /// Input height and width (a multiple of 32; default: the profile's `input_size`, else
    /// 256); the batch axis stays dynamic.
    #[arg(long, conflicts_with = "dynamic_hw")]
    size: Option<usize>,
    /// Leave height and width symbolic: one file for every input size (multiples of 32).
    #[arg(long)]
    dynamic_hw: bool,
    /// With --dynamic-hw and --scan chunked: the largest input side the file must support.
    #[arg(long, default_value_t = 1024, value_name = "PIXELS")]
    max_size: usize,
    /// Selective-scan formulation: `scan` (ONNX Scan loop, standard ops, best on CPU),
    /// `chunked` (no control flow, for TensorRT and other graph compilers) or `custom`
    /// (the ai.vmunet::SelectiveScan operator, fastest; needs vmunet's tract or ort runtimes).
    /// Default: the profile's `scan`, else `scan`.
    #[arg(long)]
    scan: Option<ScanForm>,
    /// Chunk length of `--scan chunked` (default: the profile's `chunk`, else 64).
    #[arg(long, value_name = "L")]
    chunk: Option<usize>,
    /// `--scan chunked`: the largest float32 intermediate of the scan, in MiB; bigger ones are
    /// split into one direction and channel slice at a time, which bounds the runtime's peak
    /// memory (the paper model at 256x256 peaks far lower than unsplit).
    #[arg(long, default_value_t = (vmunet_onnx::DEFAULT_CHUNK_GROUP_BYTES >> 20) as u64, value_name = "MiB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    chunk_memory_mb: u64,
    /// Device profile (devices/*.toml): its `scan`, `chunk` and `input_size` become the
    /// defaults.
    #[arg(long, value_name = "PROFILE.toml")]
    profile: Option<PathBuf>,
    /// Class names, one per output channel, comma-separated (recorded in the metadata).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    class_names: Option<Vec<String>>,
}

/// The compression history a checkpoint records (structured pruning), for the export.
pub fn checkpoint_history(
    loaded: &crate::source::Loaded,
) -> Result<Vec<vmunet_onnx_ir::CompressionStep>> {
    Ok(loaded
        .info
        .as_ref()
        .map(|i| i.history.clone())
        .unwrap_or_default())
}

pub fn run(a: Args) -> Result<()> {
    let profile = match &a.profile {
        Some(p) => Some(vmunet_runtime::DeviceProfile::load(p)?),
        None => None,
    };
    let scan = match (a.scan, &profile) {
        (Some(s), _) => s,
        (None, Some(p)) => p.scan,
        (None, None) => ScanForm::default(),
    };
    let chunk = a
        .chunk
        .or(profile.as_ref().and_then(|p| p.chunk))
        .unwrap_or(DEFAULT_CHUNK);
    let loaded = a.source.load()?;
    let size = a.size.unwrap_or_else(|| {
        vmunet_runtime::default_input_size(loaded.input_size(), profile.as_ref())
    });
    let opts = ExportOptions {
        height: size,
        width: size,
        opset: a.opset,
        scan,
        chunk,
        dynamic_hw: a.dynamic_hw,
        max_size: a.max_size,
        chunk_group_bytes: (a.chunk_memory_mb as usize) << 20,
        class_names: a.class_names.clone(),
        source: Some(loaded.label.clone()),
        source_sha256: match &a.source.checkpoint {
            Some(ck) => Some(sha256_hex(ck)?),
            None => None,
        },
        history: checkpoint_history(&loaded)?,
        ..Default::default()
    };
    let proto = export(&loaded.model, &loaded.config, &opts)?;
    let nodes = proto.graph.nodes().len();
    write(&proto, &a.output).with_context(|| format!("writing {}", a.output.display()))?;
    let bytes = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    let hw = if a.dynamic_hw {
        "height, width".to_string()
    } else {
        format!("{size}, {size}")
    };
    println!(
        "wrote {} (opset {}, scan `{}`, input [batch, {}, {hw}], {} nodes, {:.1} MB)",
        a.output.display(),
        a.opset,
        scan,
        loaded.config.input_channels,
        nodes,
        bytes as f64 / 1e6
    );
    Ok(())
}

/// SHA-256 of a file, lowercase hex (recorded so a deployed model names its checkpoint).
pub(crate) fn sha256_hex(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
