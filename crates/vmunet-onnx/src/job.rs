//! Exporting a loaded model with the defaults its checkpoint and a device profile imply, into a
//! file: what `vmunet export`, the compression report and the benchmarks all do.

use std::path::{Path, PathBuf};

use vmunet_model::LoadedModel;
use vmunet_target::{default_input_size, DeviceProfile};

use crate::{
    export, write, ExportError, ExportOptions, ScanForm, DEFAULT_CHUNK, DEFAULT_CHUNK_GROUP_BYTES,
    DEFAULT_OPSET,
};

/// What to export; `None` fields take the device profile's value, else the default.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Input height and width (default: the size the checkpoint was trained at, else the
    /// profile's, else 256).
    pub size: Option<usize>,
    /// ONNX opset.
    pub opset: i64,
    /// Scan formulation.
    pub scan: Option<ScanForm>,
    /// Chunk length of the chunked form.
    pub chunk: Option<usize>,
    /// Largest float32 intermediate of the chunked scan, in MiB.
    pub chunk_memory_mb: Option<u64>,
    /// Leave height and width symbolic.
    pub dynamic_hw: bool,
    /// Largest input side of a size-dynamic chunked export.
    pub max_size: usize,
    /// Class names, one per output channel.
    pub class_names: Option<Vec<String>>,
    /// The preprocessing to record, for a checkpoint that does not say (an official `.pth`);
    /// default: the checkpoint's, else ISIC for one class and Synapse for more.
    pub preprocessing: Option<vmunet_onnx_ir::Preprocessing>,
}

impl Default for ExportRequest {
    fn default() -> Self {
        Self {
            size: None,
            opset: DEFAULT_OPSET,
            scan: None,
            chunk: None,
            chunk_memory_mb: None,
            dynamic_hw: false,
            max_size: 1024,
            class_names: None,
            preprocessing: None,
        }
    }
}

/// What [`export_to_file`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The ONNX file.
    pub path: PathBuf,
    /// Opset written.
    pub opset: i64,
    /// Scan formulation written.
    pub scan: ScanForm,
    /// Input height = width (None: size-dynamic).
    pub size: Option<usize>,
    /// Input channels.
    pub channels: usize,
    /// Nodes in the main graph.
    pub nodes: usize,
    /// File size.
    pub bytes: u64,
    /// The preprocessing recorded for every front end.
    pub preprocessing: vmunet_onnx_ir::Preprocessing,
}

impl ExportSummary {
    /// The summary as JSON (the Python package's `ExportReport`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "opset": self.opset,
            "scan": self.scan.to_string(),
            "size": self.size,
            "channels": self.channels,
            "nodes": self.nodes,
            "bytes": self.bytes,
            "preprocessing": self.preprocessing.to_string(),
        })
    }
}

/// Two lines, as `vmunet export` prints them: the file, and the preprocessing it records.
impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hw = match self.size {
            Some(s) => format!("{s}, {s}"),
            None => "height, width".to_string(),
        };
        writeln!(
            f,
            "wrote {} (opset {}, scan `{}`, input [batch, {}, {hw}], {} nodes, {:.1} MB)",
            self.path.display(),
            self.opset,
            self.scan,
            self.channels,
            self.nodes,
            self.bytes as f64 / 1e6
        )?;
        write!(
            f,
            "preprocessing: {} ({})",
            self.preprocessing,
            self.preprocessing.describe()
        )
    }
}

impl ExportRequest {
    /// The exporter's options for `loaded` under `profile`: the request's values, else the
    /// profile's, else the defaults; provenance (source, its SHA-256, the checkpoint's
    /// compression history) from the checkpoint.
    pub fn options(
        &self,
        loaded: &LoadedModel,
        profile: Option<&DeviceProfile>,
    ) -> Result<ExportOptions, ExportError> {
        let target = profile
            .map(DeviceProfile::export_defaults)
            .unwrap_or_default();
        let size = self
            .size
            .unwrap_or_else(|| default_input_size(loaded.input_size(), profile));
        let source_sha256 = match loaded.checkpoint() {
            Some(ck) => Some(vmunet_fs::sha256_file(ck).map_err(|e| ExportError::Io {
                path: e.path,
                source: e.source,
            })?),
            None => None,
        };
        Ok(ExportOptions {
            height: size,
            width: size,
            opset: self.opset,
            scan: self.scan.or(target.scan).unwrap_or_default(),
            chunk: self.chunk.or(target.chunk).unwrap_or(DEFAULT_CHUNK),
            dynamic_hw: self.dynamic_hw,
            max_size: self.max_size,
            chunk_group_bytes: self
                .chunk_memory_mb
                .or(target.chunk_memory_mb)
                .map_or(DEFAULT_CHUNK_GROUP_BYTES, |mb| (mb as usize) << 20),
            class_names: self.class_names.clone(),
            preprocessing: Some(self.preprocessing_for(loaded)),
            source: Some(loaded.label.clone()),
            source_sha256,
            history: loaded
                .info
                .as_ref()
                .map(|i| i.history.clone())
                .unwrap_or_default(),
            ..Default::default()
        })
    }
}

impl ExportRequest {
    /// The preprocessing recorded for `loaded`: the request's, else the checkpoint's, else
    /// ISIC (photos) for a one-class model and Synapse (CT) for a multi-class one.
    pub fn preprocessing_for(&self, loaded: &LoadedModel) -> vmunet_onnx_ir::Preprocessing {
        use vmunet_onnx_ir::Preprocessing;
        self.preprocessing
            .or_else(|| loaded.info.as_ref().and_then(|i| i.preprocessing))
            .unwrap_or(if loaded.config.num_classes == 1 {
                Preprocessing::Isic
            } else {
                Preprocessing::Synapse
            })
    }
}

/// Exports `loaded` as `request` and `profile` say and writes it to `out` (atomically).
pub fn export_to_file(
    loaded: &LoadedModel,
    request: &ExportRequest,
    profile: Option<&DeviceProfile>,
    out: &Path,
) -> Result<ExportSummary, ExportError> {
    let opts = request.options(loaded, profile)?;
    let model = export(&loaded.model, &loaded.config, &opts)?;
    let nodes = model.graph.nodes().len();
    write(&model, out)?;
    Ok(ExportSummary {
        path: out.to_path_buf(),
        opset: opts.opset,
        scan: opts.scan,
        size: (!opts.dynamic_hw).then_some(opts.height),
        channels: loaded.config.input_channels,
        nodes,
        bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        preprocessing: request.preprocessing_for(loaded),
    })
}
