//! ONNX model files: decoding with errors that name the file, durable writing.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::graph::Graph;
use crate::metadata::{MetadataError, ModelMetadata};
use crate::pb::{GraphProto, ModelProto, OperatorSetIdProto};

/// Errors reading or writing a model file; each names the file when there is one.
#[derive(Debug, thiserror::Error)]
pub enum OnnxFileError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The bytes are not a usable ONNX model.
    #[error("{path}: not a valid ONNX model ({reason})")]
    Invalid {
        /// File (`<bytes>` when decoded from memory).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The `metadata_props` hold a bad value.
    #[error("{path}: {source}")]
    Metadata {
        /// File.
        path: PathBuf,
        /// The bad entry.
        source: MetadataError,
    },
}

impl OnnxFileError {
    /// The reason, without the file name (for callers that print the file themselves).
    pub fn reason(&self) -> String {
        match self {
            Self::Io { source, .. } => source.to_string(),
            Self::Invalid { reason, .. } => reason.clone(),
            Self::Metadata { source, .. } => source.to_string(),
        }
    }
}

/// An ONNX model: the main [`Graph`] and the rest of the `ModelProto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Everything but the graph (`graph` is `None` here).
    pub header: ModelProto,
    /// The main graph.
    pub graph: Graph,
}

const IN_MEMORY: &str = "<bytes>";

impl Model {
    /// A model of `graph` with ONNX IR version `ir_version` and the given opset imports
    /// (`(domain, version)`, `""` for the default domain).
    pub fn new(graph: Graph, ir_version: i64, opsets: &[(&str, i64)]) -> Self {
        Self {
            header: ModelProto {
                ir_version: Some(ir_version),
                opset_import: opsets
                    .iter()
                    .map(|&(d, v)| OperatorSetIdProto {
                        // The default domain is left unset, as most producers write it.
                        domain: (!d.is_empty()).then(|| d.to_string()),
                        version: Some(v),
                    })
                    .collect(),
                ..Default::default()
            },
            graph,
        }
    }

    /// Wraps a decoded `ModelProto`; it must have a graph.
    pub fn from_proto(mut proto: ModelProto) -> Result<Self, OnnxFileError> {
        let graph: GraphProto = proto.graph.take().ok_or_else(|| OnnxFileError::Invalid {
            path: IN_MEMORY.into(),
            reason: "it has no graph".into(),
        })?;
        Ok(Self {
            header: proto,
            graph: Graph::from_proto(graph),
        })
    }

    /// Decodes ONNX protobuf bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxFileError> {
        let proto = ModelProto::decode(bytes).map_err(|e| OnnxFileError::Invalid {
            path: IN_MEMORY.into(),
            reason: format!("protobuf decoding failed: {e}; the file may be truncated"),
        })?;
        Self::from_proto(proto)
    }

    /// Reads and decodes the file `path`.
    pub fn read(path: &Path) -> Result<Self, OnnxFileError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            OnnxFileError::Invalid { reason, .. } => OnnxFileError::Invalid {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// The whole `ModelProto`.
    pub fn to_proto(&self) -> ModelProto {
        ModelProto {
            graph: Some(self.graph.proto().clone()),
            ..self.header.clone()
        }
    }

    /// The protobuf encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Writes the model to `path` durably ([`vmunet_fs::write_durable`]: a temporary file in
    /// the same folder, fsynced and renamed), so a reader never sees a partial file.
    pub fn write(&self, path: &Path) -> Result<(), OnnxFileError> {
        vmunet_fs::write_durable(path, &self.to_bytes()).map_err(|e| OnnxFileError::Io {
            path: e.path,
            source: e.source,
        })
    }

    /// The typed vmunet metadata of `metadata_props`.
    pub fn metadata(&self) -> Result<ModelMetadata, MetadataError> {
        ModelMetadata::from_props(&self.header.metadata_props)
    }

    /// Replaces `metadata_props` by `meta`.
    pub fn set_metadata(&mut self, meta: &ModelMetadata) {
        self.header.metadata_props = meta.to_props();
    }
}
