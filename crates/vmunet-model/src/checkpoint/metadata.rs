//! The metadata block of the project's burnpack checkpoints: string entries for the training
//! input size and the compression history (a JSON list of [`CompressionStep`]s), read and
//! written here only.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use vmunet_onnx_ir::{CompressionStep, Preprocessing};

use super::error::CheckpointError;

/// The entry naming the architecture.
pub(super) const MODEL_KEY: &str = "model";
/// The value of [`MODEL_KEY`].
pub(super) const MODEL_NAME: &str = "vm-unet";
/// The entry holding the training input size.
const INPUT_SIZE_KEY: &str = "input_size";
/// The entry holding the compression history (JSON text).
const HISTORY_KEY: &str = "compression";
/// The entry holding the preprocessing of the training data (`isic` or `synapse`).
const PREPROCESSING_KEY: &str = "preprocessing";

/// What a burnpack checkpoint records besides its tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointRecord {
    /// Training input size (H = W).
    pub input_size: Option<usize>,
    /// The preprocessing of the training data (ISIC photos or Synapse CT).
    pub preprocessing: Option<Preprocessing>,
    /// Compression steps, oldest first.
    pub history: Vec<CompressionStep>,
}

/// Reads and checks the recorded entries of the burnpack file `path`; the input size must be
/// a positive multiple of `size_multiple`.
pub(super) fn read(path: &Path, size_multiple: usize) -> Result<CheckpointRecord, CheckpointError> {
    let meta = read_block(path)?;
    let input_size = meta
        .get(INPUT_SIZE_KEY)
        .map(|v| parse_input_size(path, v, size_multiple))
        .transpose()?;
    let history = match meta.get(HISTORY_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|source| CheckpointError::History {
            path: path.to_path_buf(),
            source,
        })?,
        None => Vec::new(),
    };
    let preprocessing = meta
        .get(PREPROCESSING_KEY)
        .map(|v| {
            v.parse().map_err(|detail| CheckpointError::NotVmUnet {
                path: path.to_path_buf(),
                detail,
            })
        })
        .transpose()?;
    Ok(CheckpointRecord {
        input_size,
        preprocessing,
        history,
    })
}

fn parse_input_size(path: &Path, v: &str, multiple: usize) -> Result<usize, CheckpointError> {
    v.parse::<usize>()
        .ok()
        .filter(|&s| s > 0 && s % multiple == 0)
        .ok_or_else(|| CheckpointError::NotVmUnet {
            path: path.to_path_buf(),
            detail: format!("recorded input size `{v}` is not a positive multiple of {multiple}"),
        })
}

/// The entries [`read`] understands, for writing `path`: the input size when known and the
/// compression history when not empty (the JSON text of the steps).
pub(super) fn entries(
    path: &Path,
    record: &CheckpointRecord,
) -> Result<Vec<(&'static str, String)>, CheckpointError> {
    let mut v = Vec::new();
    if let Some(size) = record.input_size {
        v.push((INPUT_SIZE_KEY, size.to_string()));
    }
    if let Some(p) = record.preprocessing {
        v.push((PREPROCESSING_KEY, p.as_str().to_string()));
    }
    let history = &record.history;
    if !history.is_empty() {
        let text = serde_json::to_string(history).map_err(|source| CheckpointError::History {
            path: path.to_path_buf(),
            source,
        })?;
        v.push((HISTORY_KEY, text));
    }
    Ok(v)
}

/// The string entries of a burnpack file's metadata (the CBOR block after the 10-byte header:
/// magic, format version, metadata length).
fn read_block(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    #[derive(serde::Deserialize)]
    struct Block {
        #[serde(default)]
        metadata: BTreeMap<String, String>,
    }
    let bad = |detail: String| CheckpointError::NotVmUnet {
        path: path.to_path_buf(),
        detail,
    };
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut header = [0u8; 10];
    file.read_exact(&mut header).map_err(io)?;
    let len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as u64;
    let file_len = file.metadata().map_err(io)?.len();
    if len > file_len.saturating_sub(10) {
        return Err(bad(format!(
            "burnpack metadata of {len} bytes does not fit a {file_len}-byte file"
        )));
    }
    let block: Block = ciborium::from_reader(file.take(len))
        .map_err(|e| bad(format!("unreadable burnpack metadata: {e}")))?;
    Ok(block.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str) -> CompressionStep {
        let mut params = serde_json::Map::new();
        params.insert("ratio".into(), 0.25.into());
        CompressionStep {
            kind: kind.into(),
            params,
            tool: Some("vmunet-compress 0.1.0".into()),
        }
    }

    #[test]
    fn entries_keep_the_old_keys_and_json_text() {
        let p = Path::new("m.bpk");
        assert!(entries(p, &CheckpointRecord::default()).unwrap().is_empty());
        let steps = [step("prune")];
        let record = CheckpointRecord {
            input_size: Some(96),
            preprocessing: Some(Preprocessing::Synapse),
            history: steps.to_vec(),
        };
        let e = entries(p, &record).unwrap();
        assert_eq!(e[0], ("input_size", "96".to_string()));
        assert_eq!(e[1], ("preprocessing", "synapse".to_string()));
        assert_eq!(e[2].0, "compression");
        assert_eq!(e[2].1, serde_json::to_string(&steps.to_vec()).unwrap());
        let back: Vec<CompressionStep> = serde_json::from_str(&e[2].1).unwrap();
        assert_eq!(back, steps);
    }
}
