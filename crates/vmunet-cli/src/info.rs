//! `vmunet info`: a checkpoint's (or preset's) architecture, or an ONNX file's input, metadata
//! and history.

use std::path::PathBuf;

use anyhow::Result;
#[cfg(feature = "full")]
use burn::module::Module;

#[cfg(feature = "full")]
use crate::source::group;
#[cfg(feature = "full")]
use crate::source::ModelSource;

/// Arguments of `vmunet info`.
#[derive(clap::Args)]
pub struct Args {
    #[cfg(feature = "full")]
    #[command(flatten)]
    source: ModelSource,
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

pub fn run(a: Args) -> Result<()> {
    if a.system {
        return system_info(a.json);
    }
    if let Some(path) = &a.model {
        return onnx_info(path, a.json);
    }
    #[cfg(feature = "full")]
    return checkpoint_info(a);
    #[cfg(not(feature = "full"))]
    anyhow::bail!("give --model FILE.onnx");
}

/// This build and machine: what a deployer checks first on a new device.
fn system_info(json: bool) -> Result<()> {
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
    let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    let kernels = vmunet_runtime::scan_kernels();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"), "target": target, "scan_kernels": kernels,
            "features": features, "cpu_threads": threads,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("vmunet {}", env!("CARGO_PKG_VERSION"));
        println!("target:       {target}");
        println!("scan kernels: {kernels}");
        println!("features:     {}", features.join(", "));
        println!("cpu threads:  {threads}");
    }
    Ok(())
}

/// An ONNX file: its declared input, size and metadata.
fn onnx_info(path: &std::path::Path, json: bool) -> Result<()> {
    let file = vmunet_runtime::ModelFile::read(path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // The entries as the file stores them (the contract crate's one writer names the keys).
    let props: Vec<(String, String)> = file
        .metadata
        .to_props()
        .into_iter()
        .map(|e| (e.key().to_string(), e.value().to_string()))
        .collect();
    if json {
        let metadata: serde_json::Map<String, serde_json::Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "bytes": bytes,
            "input": file.input.to_string(),
            "metadata": metadata,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "model:        {} ({:.2} MB)",
        path.display(),
        bytes as f64 / 1e6
    );
    println!("input:        {}", file.input);
    if let Some(p) = file.metadata.precision {
        println!("precision:    {p}");
    }
    for (k, v) in props
        .iter()
        .filter(|(k, _)| k != vmunet_onnx_ir::keys::COMPRESSION)
    {
        println!("{k:<26}{v}");
    }
    if !file.metadata.compression.is_empty() {
        println!("history:");
        for (i, step) in file.metadata.compression.iter().enumerate() {
            println!(
                "  {}. {}{}",
                i + 1,
                step.kind,
                step.tool
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            );
            for (k, v) in &step.params {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) if a.len() > 6 => {
                        format!("{} entries", a.len())
                    }
                    other => other.to_string(),
                };
                println!("       {k:<18}{text}");
            }
        }
    }
    Ok(())
}

/// A checkpoint or preset: configuration, parameters and stage shapes.
#[cfg(feature = "full")]
fn checkpoint_info(a: Args) -> Result<()> {
    let loaded = a.source.load()?;
    let cfg = &loaded.config;
    let params = loaded.model.num_params();
    let size = a.size.or(loaded.input_size()).unwrap_or(256);
    let stages = cfg.stage_shapes(size, size);
    if a.json {
        let v = serde_json::json!({
            "source": loaded.label,
            "format": loaded.info.as_ref().map(|i| i.format.to_string()),
            "parameters": params,
            "input_size": loaded.input_size(),
            "config": serde_json::to_value(cfg)?,
            "stages": stages.iter().map(|s| serde_json::json!({
                "name": s.name, "channels": s.channels, "height": s.height, "width": s.width,
                "blocks": s.blocks, "d_inner": s.d_inner, "dt_rank": s.dt_rank,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("model:        VM-UNet ({})", loaded.label);
    if let Some(info) = &loaded.info {
        println!(
            "format:       {} ({} tensors)",
            info.format,
            info.shapes.len()
        );
    }
    println!("parameters:   {}", group(params));
    if let Some(s) = loaded.input_size() {
        println!("trained at:   {s}x{s} (eval, export and infer default to it)");
    }
    println!(
        "input:        N x {} x H x W, H and W multiples of {}",
        cfg.input_channels,
        cfg.size_multiple()
    );
    println!(
        "classes:      {} ({})",
        cfg.num_classes,
        loaded.model.activation().as_str()
    );
    println!(
        "dims:         {:?} (decoder {:?})",
        cfg.dims,
        cfg.dims_decoder()
    );
    println!(
        "depths:       encoder {:?}, decoder {:?}",
        cfg.depths, cfg.depths_decoder
    );
    println!(
        "ssm:          d_state {}, d_conv {}, expand {}, dt_rank {}",
        cfg.d_state,
        cfg.d_conv,
        cfg.ssm_expand,
        cfg.dt_rank
            .map_or("ceil(C/16)".to_string(), |r| r.to_string())
    );
    println!("stages at {size}x{size}:");
    println!(
        "  {:<10} {:>8} {:>11} {:>7} {:>8} {:>8}",
        "stage", "channels", "size", "blocks", "d_inner", "dt_rank"
    );
    for s in stages {
        println!(
            "  {:<10} {:>8} {:>11} {:>7} {:>8} {:>8}",
            s.name,
            s.channels,
            format!("{}x{}", s.height, s.width),
            s.blocks,
            s.d_inner,
            s.dt_rank
        );
    }
    Ok(())
}
