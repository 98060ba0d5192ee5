//! VM-UNet to ONNX with standard operators (opset 17), following the burn model's module tree:
//! each module type is lowered once, weights become initializers named by the official
//! checkpoint keys. The selective scan has three formulations ([`ScanForm`]): an ONNX `Scan`
//! loop (default, best on CPU), a chunked log-depth scan without control flow (for GPU graph
//! compilers such as TensorRT), and the `ai.vmunet::SelectiveScan` custom operator that the
//! project's runtimes implement.

mod builder;
mod lower;

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use vmunet_model::{ModelError, VmUnet, VmUnetConfig};

/// Default ONNX opset (LayerNormalization is native from 17).
pub const DEFAULT_OPSET: i64 = 17;

/// Operator domain of the project's custom operators.
pub const CUSTOM_DOMAIN: &str = vmunet_scan::ONNX_DOMAIN;
/// The custom cross selective-scan operator (contract: [`vmunet_scan::ONNX_OP`]).
pub const CUSTOM_OP: &str = vmunet_scan::ONNX_OP;

/// How the selective scan is written in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanForm {
    /// One ONNX `Scan` loop per SS2D block (standard ops; default).
    #[default]
    Loop,
    /// Chunked log-depth scan with no control flow (standard ops).
    Chunked,
    /// The `ai.vmunet::SelectiveScan` custom operator (needs the project's runtimes).
    Custom,
}

impl ScanForm {
    /// The name used on the command line and in the metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loop => "scan",
            Self::Chunked => "chunked",
            Self::Custom => "custom",
        }
    }
    /// Every formulation.
    pub const ALL: [ScanForm; 3] = [Self::Loop, Self::Chunked, Self::Custom];
}

impl std::fmt::Display for ScanForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScanForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scan formulation `{s}` (expected scan, chunked or custom)")
            })
    }
}

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
    /// Class names (one per output channel); defaults to `foreground` / `class_i`.
    pub class_names: Option<Vec<String>>,
    /// Extra `metadata_props` entries.
    pub metadata: Vec<(String, String)>,
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
            class_names: None,
            metadata: Vec::new(),
        }
    }
}

/// Default scan steps per `Scan` iteration.
pub const DEFAULT_UNROLL: usize = 8;

/// Default chunk length of the chunked formulation.
pub const DEFAULT_CHUNK: usize = 64;

/// Builds the ONNX model (batch axis dynamic; H and W fixed unless `dynamic_hw`).
pub fn export<B: vmunet_scan::ScanBackend>(
    model: &VmUnet<B>,
    cfg: &VmUnetConfig,
    opts: &ExportOptions,
) -> Result<ModelProto, ExportError> {
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
        Some(names) => names.clone(),
        None if cfg.num_classes == 1 => vec!["foreground".to_string()],
        None => (0..cfg.num_classes).map(|i| format!("class_{i}")).collect(),
    };
    let graph = lower::lower_model::<B>(model, cfg, opts);
    let size = if opts.dynamic_hw && opts.scan == ScanForm::Chunked {
        format!("any multiple of 32 up to {}", opts.max_size)
    } else if opts.dynamic_hw {
        "any multiple of 32".to_string()
    } else {
        format!("{}x{}", opts.height, opts.width)
    };
    let mut metadata = vec![
        ("vmunet.config".to_string(), serde_json_string(cfg)),
        ("vmunet.output_activation".to_string(), model.activation().as_str().to_string()),
        (
            "vmunet.preprocessing".to_string(),
            format!(
                "per-image min-max rescale of all channels jointly to [0,255], then bilinear resize to {size}"
            ),
        ),
        ("vmunet.class_names".to_string(), classes.join(",")),
        ("vmunet.scan".to_string(), opts.scan.as_str().to_string()),
    ];
    if opts.scan == ScanForm::Chunked {
        metadata.push(("vmunet.chunk".to_string(), opts.chunk.to_string()));
    }
    if opts.dynamic_hw && opts.scan == ScanForm::Chunked {
        metadata.push(("vmunet.max_size".to_string(), opts.max_size.to_string()));
    }
    let mut opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: opts.opset,
    }];
    if opts.scan == ScanForm::Custom {
        opset_import.push(OperatorSetIdProto {
            domain: CUSTOM_DOMAIN.to_string(),
            version: 1,
        });
    }
    metadata.extend(opts.metadata.iter().cloned());
    Ok(ModelProto {
        ir_version: 8,
        opset_import,
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
