//! VM-UNet to ONNX with standard operators (opset 17), following the burn model's module tree:
//! each module type is lowered once, weights become initializers named by the official
//! checkpoint keys, and the selective scan becomes an ONNX `Scan` loop.

mod builder;
mod lower;

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use vmunet_model::{ModelError, VmUnet, VmUnetConfig};

/// Default ONNX opset (LayerNormalization is native from 17).
pub const DEFAULT_OPSET: i64 = 17;

/// Export errors.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The requested input size does not fit the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The opset is too old for the operators used.
    #[error("opset {0} is not supported: LayerNormalization needs opset 17 or newer")]
    Opset(i64),
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Export options.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// ONNX opset.
    pub opset: i64,
    /// Extra `metadata_props` entries.
    pub metadata: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            height: 256,
            width: 256,
            opset: DEFAULT_OPSET,
            metadata: Vec::new(),
        }
    }
}

/// Builds the ONNX model (batch axis dynamic, H and W fixed).
pub fn export<B: vmunet_scan::ScanBackend>(
    model: &VmUnet<B>,
    cfg: &VmUnetConfig,
    opts: &ExportOptions,
) -> Result<ModelProto, ExportError> {
    if opts.opset < 17 {
        return Err(ExportError::Opset(opts.opset));
    }
    model.check_input([1, cfg.input_channels, opts.height, opts.width])?;
    let graph = lower::lower_model::<B>(model, cfg, opts.height, opts.width);
    let mut metadata = vec![
        ("vmunet.config".to_string(), serde_json_string(cfg)),
        ("vmunet.output_activation".to_string(), model.activation().as_str().to_string()),
        (
            "vmunet.preprocessing".to_string(),
            format!(
                "per-image min-max rescale of all channels jointly to [0,255], then bilinear resize to {}x{}",
                opts.height, opts.width
            ),
        ),
    ];
    metadata.extend(opts.metadata.iter().cloned());
    Ok(ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opts.opset,
        }],
        producer_name: "vmunet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        ..Default::default()
    })
}

fn serde_json_string(cfg: &VmUnetConfig) -> String {
    cfg.to_string()
}

/// Serialises `model` and writes it atomically.
pub fn write(model: &ModelProto, path: &Path) -> Result<(), ExportError> {
    let bytes = model.encode_to_vec();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
