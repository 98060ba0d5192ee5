//! VM-UNet to ONNX with standard operators (opset 17), following the burn model's module tree:
//! each module type is lowered once, weights become initializers named by the official
//! checkpoint keys. The selective scan has three formulations ([`ScanForm`]): an ONNX `Scan`
//! loop (default, best on CPU), a chunked log-depth scan without control flow (for GPU graph
//! compilers such as TensorRT), and the `ai.vmunet::SelectiveScan` custom operator that the
//! project's runtimes implement.

#![deny(missing_docs)]

mod job;
mod lower;

use std::path::Path;

pub use job::{export_to_file, ExportRequest, ExportSummary};
use vmunet_model::{ModelError, OutputActivation, VmUnet, VmUnetConfig};
use vmunet_onnx_ir::{Activation, InputSize, ModelMetadata, Precision};
pub use vmunet_onnx_ir::{Model, ScanForm, CUSTOM_DOMAIN, CUSTOM_OP};

/// Default ONNX opset (LayerNormalization is native from 17).
pub const DEFAULT_OPSET: i64 = 17;

/// ONNX IR version written (ONNX 1.13+, opset 17 era).
pub const IR_VERSION: i64 = 8;

/// Export errors.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The requested input size does not fit the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The opset is too old for the operators used.
    #[error("opset {0} is not supported: LayerNormalization needs opset 17 or newer")]
    Opset(i64),
    /// An option is out of range.
    #[error("{0}")]
    Options(String),
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
    /// Input height (ignored with `dynamic_hw`).
    pub height: usize,
    /// Input width (ignored with `dynamic_hw`).
    pub width: usize,
    /// ONNX opset.
    pub opset: i64,
    /// Scan formulation.
    pub scan: ScanForm,
    /// Chunk length of [`ScanForm::Chunked`].
    pub chunk: usize,
    /// Scan steps per loop iteration of [`ScanForm::Loop`] (fixed sizes; the largest value up
    /// to this that divides the sequence length is used).
    pub unroll: usize,
    /// Leave height and width symbolic (any multiple of 32 at run time).
    pub dynamic_hw: bool,
    /// Largest input side a dynamic-size chunked export supports (it fixes the number of
    /// cross-chunk steps); recorded in the metadata.
    pub max_size: usize,
    /// Peak-memory bound of [`ScanForm::Chunked`]: when one of its `(K, L, D, S)` float32
    /// intermediates (batch 1, the longest sequence) would be larger, the scan is written one
    /// direction and channel slice at a time so that none is.
    pub chunk_group_bytes: usize,
    /// Class names (one per output channel, no commas); defaults to `foreground` / `class_i`.
    pub class_names: Option<Vec<String>>,
    /// The preprocessing the model expects (recorded in the metadata; default ISIC).
    pub preprocessing: Option<vmunet_onnx_ir::Preprocessing>,
    /// The checkpoint or preset exported (recorded in the metadata).
    pub source: Option<String>,
    /// SHA-256 of the checkpoint file, lowercase hex (recorded in the metadata).
    pub source_sha256: Option<String>,
    /// What was done to the checkpoint before export (e.g. structured pruning), recorded as
    /// the first compression steps of the model's history.
    pub history: Vec<vmunet_onnx_ir::CompressionStep>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            height: 256,
            width: 256,
            opset: DEFAULT_OPSET,
            scan: ScanForm::Loop,
            chunk: DEFAULT_CHUNK,
            unroll: DEFAULT_UNROLL,
            dynamic_hw: false,
            max_size: 1024,
            chunk_group_bytes: DEFAULT_CHUNK_GROUP_BYTES,
            class_names: None,
            preprocessing: None,
            source: None,
            source_sha256: None,
            history: Vec::new(),
        }
    }
}

/// Default scan steps per `Scan` iteration.
pub const DEFAULT_UNROLL: usize = 8;

/// Default chunk length of the chunked formulation.
pub const DEFAULT_CHUNK: usize = 64;

/// Default [`ExportOptions::chunk_group_bytes`]: 16 MiB per intermediate (the paper model at
/// 256x256 then peaks at 1.2 GB in ONNX Runtime's CPU provider, against 5.0 GB unsplit).
pub const DEFAULT_CHUNK_GROUP_BYTES: usize = 16 << 20;

/// Builds the ONNX model (batch axis dynamic; H and W fixed unless `dynamic_hw`).
pub fn export<B: vmunet_scan::ScanBackend>(
    model: &VmUnet<B>,
    cfg: &VmUnetConfig,
    opts: &ExportOptions,
) -> Result<Model, ExportError> {
    if opts.opset < 17 {
        return Err(ExportError::Opset(opts.opset));
    }
    let (h, w) = if opts.dynamic_hw {
        (opts.max_size, opts.max_size)
    } else {
        (opts.height, opts.width)
    };
    model.check_input([1, cfg.input_channels, h, w])?;
    if opts.scan == ScanForm::Chunked && !(1..=4096).contains(&opts.chunk) {
        return Err(ExportError::Options(format!(
            "--chunk {} is out of range (1..=4096)",
            opts.chunk
        )));
    }
    let classes = match &opts.class_names {
        Some(names) if names.len() != cfg.num_classes => {
            return Err(ExportError::Options(format!(
                "{} class names given for a model with {} output channels",
                names.len(),
                cfg.num_classes
            )))
        }
        Some(names) if names.iter().any(|n| n.contains(',') || n.is_empty()) => {
            return Err(ExportError::Options(format!(
                "class names must be non-empty and free of commas: {names:?}"
            )))
        }
        Some(names) => names.clone(),
        None => vmunet_onnx_ir::default_class_names(cfg.num_classes, opts.preprocessing),
    };
    let graph = lower::lower_model::<B>(model, cfg, opts);
    let meta = ModelMetadata {
        config: Some(cfg.to_json()),
        output_activation: Some(match model.activation() {
            OutputActivation::Sigmoid => Activation::Sigmoid,
            OutputActivation::Softmax => Activation::Softmax,
        }),
        preprocessing: Some(opts.preprocessing.unwrap_or_default()),
        class_names: classes,
        scan: Some(opts.scan),
        chunk: (opts.scan == ScanForm::Chunked).then_some(opts.chunk),
        input_size: Some(if opts.dynamic_hw {
            InputSize::Dynamic {
                max_size: (opts.scan == ScanForm::Chunked).then_some(opts.max_size),
            }
        } else {
            InputSize::Fixed {
                height: opts.height,
                width: opts.width,
            }
        }),
        precision: Some(Precision::Fp32),
        toolkit_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        source: opts.source.clone(),
        source_sha256: opts.source_sha256.clone(),
        compression: opts.history.clone(),
        extra: Vec::new(),
    };
    let mut opsets = vec![("", opts.opset)];
    if opts.scan == ScanForm::Custom {
        opsets.push((CUSTOM_DOMAIN, 1));
    }
    let mut out = Model::new(
        vmunet_onnx_ir::Graph::from_proto(graph),
        IR_VERSION,
        &opsets,
    );
    out.header.producer_name = Some("vmunet".into());
    out.header.producer_version = Some(env!("CARGO_PKG_VERSION").into());
    out.set_metadata(&meta);
    Ok(out)
}

/// Serialises `model` and writes it atomically.
pub fn write(model: &Model, path: &Path) -> Result<(), ExportError> {
    model.write(path).map_err(|e| match e {
        vmunet_onnx_ir::OnnxFileError::Io { path, source } => ExportError::Io { path, source },
        other => ExportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}
