//! `vmunet export`: checkpoint to ONNX. The export is `vmunet_onnx::export_to_file`; a device
//! profile's defaults come from `vmunet_target`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmunet_onnx::{export_to_file, ExportRequest, ScanForm, DEFAULT_OPSET};

use crate::args::SourceArgs;

/// Arguments of `vmunet export`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Output ONNX file.
    #[arg(short, long, value_name = "model.onnx")]
    output: PathBuf,
    /// ONNX opset (17 or newer: LayerNormalization is native).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// Input height and width (a multiple of 32; default: the size the checkpoint was trained
    /// at, else the profile's `input_size`, else 256); the batch axis stays dynamic.
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
    /// memory (default: the profile's `chunk_memory_mb`, else 16).
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    chunk_memory_mb: Option<u64>,
    /// Device profile (devices/*.toml): its `scan`, `chunk`, `chunk_memory_mb` and
    /// `input_size` become the defaults.
    #[arg(long, value_name = "PROFILE.toml")]
    profile: Option<PathBuf>,
    /// Class names, one per output channel, comma-separated (recorded in the metadata).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    class_names: Option<Vec<String>>,
    /// The preprocessing the model expects, recorded for every front end: `isic` (photos) or
    /// `synapse` (CT: HU window [-125, 275]). Default: what the checkpoint records (`vmunet
    /// train` does), else `isic` for a one-class model and `synapse` for a multi-class one.
    #[arg(long)]
    preprocessing: Option<vmunet_onnx_ir::Preprocessing>,
}

/// Runs `vmunet export`.
pub fn run(a: Args) -> Result<()> {
    let profile = crate::args::load_profile(a.profile.as_deref())?;
    let loaded = a.source.load()?;
    let request = ExportRequest {
        size: a.size,
        opset: a.opset,
        scan: a.scan,
        chunk: a.chunk,
        chunk_memory_mb: a.chunk_memory_mb,
        dynamic_hw: a.dynamic_hw,
        max_size: a.max_size,
        class_names: a.class_names.clone(),
        preprocessing: a.preprocessing,
    };
    let summary = export_to_file(&loaded, &request, profile.as_ref(), &a.output)
        .with_context(|| format!("exporting {} to {}", loaded.label, a.output.display()))?;
    println!("{summary}");
    Ok(())
}
