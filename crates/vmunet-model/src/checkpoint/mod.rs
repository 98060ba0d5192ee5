//! Checkpoints: official PyTorch `.pth` (zip, legacy or tar), safetensors, and the project's
//! own burn record (burnpack, `.bpk`), all with the official key names and layouts.
//!
//! Loading infers the [`VmUnetConfig`] from tensor shapes, so any official checkpoint works
//! without a config file. Errors name the file and say exactly what does not match.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use vmunet_scan::ScanBackend;

use crate::{ModelError, VmUnet, VmUnetConfig};

/// On-disk checkpoint formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` output (zip, legacy pickle or tar).
    Pytorch,
    /// safetensors.
    Safetensors,
    /// burn's burnpack record, written by [`save`].
    Burnpack,
}

impl fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pytorch => "pytorch",
            Self::Safetensors => "safetensors",
            Self::Burnpack => "burnpack",
        })
    }
}

/// One tensor whose shape differs from what the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Official key.
    pub key: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape in the file.
    pub found: Vec<usize>,
}

/// Checkpoint errors; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be read.
    #[error("{path}: cannot read checkpoint: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file ends before its declared contents.
    #[error("{path}: checkpoint is truncated or corrupted ({detail})")]
    Truncated {
        /// File.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The file is not in any supported checkpoint format.
    #[error("{path}: not a checkpoint ({detail}); expected a PyTorch .pth, a .safetensors or a .bpk file")]
    NotACheckpoint {
        /// File.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Keys that identify VM-UNet are absent or inconsistent.
    #[error("{path}: not a VM-UNet checkpoint: {detail}")]
    NotVmUnet {
        /// File.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// Keys do not match the model.
    #[error("{path}: checkpoint keys do not match the model:{}{}", list("missing", .missing), list("unexpected", .unexpected))]
    Keys {
        /// File.
        path: PathBuf,
        /// Expected by the model, absent in the file.
        missing: Vec<String>,
        /// In the file, unknown to the model.
        unexpected: Vec<String>,
    },
    /// Tensor shapes do not match the model.
    #[error("{path}: tensor shapes do not match the model:{}", shapes(.mismatches))]
    Shapes {
        /// File.
        path: PathBuf,
        /// Each mismatch.
        mismatches: Vec<ShapeMismatch>,
    },
    /// The inferred or given configuration is invalid.
    #[error("{path}: {source}")]
    Config {
        /// File.
        path: PathBuf,
        /// Cause.
        source: ModelError,
    },
    /// Other errors from the storage layer.
    #[error("{path}: {message}")]
    Store {
        /// File.
        path: PathBuf,
        /// Message from burn-store.
        message: String,
    },
}

fn list(what: &str, keys: &[String]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    const SHOW: usize = 20;
    let mut s = format!("\n  {what} ({}):", keys.len());
    for k in keys.iter().take(SHOW) {
        s.push_str("\n    ");
        s.push_str(k);
    }
    if keys.len() > SHOW {
        s.push_str(&format!("\n    ... and {} more", keys.len() - SHOW));
    }
    s
}

fn shapes(m: &[ShapeMismatch]) -> String {
    m.iter()
        .map(|m| {
            format!(
                "\n  {}: expected {:?}, found {:?}",
                m.key, m.expected, m.found
            )
        })
        .collect()
}

/// A checkpoint's format, tensor shapes (official keys, PyTorch layout) and inferred config.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// File.
    pub path: PathBuf,
    /// Format.
    pub format: CheckpointFormat,
    /// Official key (without `vmunet.`) -> shape.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Configuration inferred from the shapes.
    pub config: VmUnetConfig,
    /// Input size (H = W) the model was trained at, when the file records it (burnpack
    /// checkpoints written by `vmunet train`); evaluation, export and inference default to it.
    pub input_size: Option<usize>,
    /// What was done to the model (a JSON list of compression steps, e.g. pruning), when the
    /// file records it.
    pub history: Option<String>,
}

impl CheckpointInfo {
    /// Total number of parameters stored.
    pub fn num_params(&self) -> usize {
        self.shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
}

/// Burn field names that differ from the official keys.
const RENAMES: [(&str, &str); 2] = [("A_logs", "a_logs"), ("Ds", "ds")];

fn load_remaps() -> Vec<(String, String)> {
    let mut v = vec![(r"^(module\.)?(vmunet\.)?".to_string(), String::new())];
    for (official, ours) in RENAMES {
        v.push((format!(r"\.{official}$"), format!(".{ours}")));
    }
    v
}

fn save_remaps() -> Vec<(String, String)> {
    RENAMES
        .iter()
        .map(|(official, ours)| (format!(r"\.{ours}$"), format!(".{official}")))
        .collect()
}

/// Official key for a burn parameter path (`.a_logs` -> `.A_logs`, `gamma` -> `weight`).
pub fn official_key(burn_path: &str) -> String {
    let mut k = burn_path.to_string();
    for (official, ours) in RENAMES {
        if let Some(stem) = k.strip_suffix(&format!(".{ours}")) {
            k = format!("{stem}.{official}");
        }
    }
    if let Some(stem) = k.strip_suffix(".gamma") {
        k = format!("{stem}.weight");
    } else if let Some(stem) = k.strip_suffix(".beta") {
        k = format!("{stem}.bias");
    }
    k
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Detects the format from the file's first bytes and, for safetensors, checks its length.
pub fn detect_format(path: &Path) -> Result<CheckpointFormat, CheckpointError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut head = [0u8; 16];
    let n = read_up_to(&mut f, &mut head).map_err(io_err(path))?;
    let head = &head[..n];
    let not = |detail: String| CheckpointError::NotACheckpoint {
        path: path.to_path_buf(),
        detail,
    };
    if n == 0 {
        return Err(not("the file is empty".into()));
    }
    if head.starts_with(b"PK\x03\x04") {
        check_zip_end(path, &mut f, len)?;
        return Ok(CheckpointFormat::Pytorch);
    }
    if head.starts_with(&[0x80]) {
        return Ok(CheckpointFormat::Pytorch);
    }
    if n >= 4 && (head[..4] == 0x4255_524E_u32.to_le_bytes() || head[..4] == *b"BURN") {
        return Ok(CheckpointFormat::Burnpack);
    }
    if n >= 9 && head[8] == b'{' {
        let header_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        check_safetensors(path, &mut f, len, header_len)?;
        return Ok(CheckpointFormat::Safetensors);
    }
    if n >= 265 || len >= 512 {
        // tar archives (old torch.save) carry "ustar" at offset 257.
        let mut buf = vec![0u8; 262];
        let mut f = std::fs::File::open(path).map_err(io_err(path))?;
        if read_up_to(&mut f, &mut buf).map_err(io_err(path))? == 262 && &buf[257..262] == b"ustar"
        {
            return Ok(CheckpointFormat::Pytorch);
        }
    }
    Err(not(format!(
        "unrecognised leading bytes {:02x?}",
        &head[..n.min(8)]
    )))
}

/// A zip archive ends with its central directory; a cut file loses it.
fn check_zip_end(path: &Path, f: &mut std::fs::File, len: u64) -> Result<(), CheckpointError> {
    use std::io::Seek;
    let tail = len.min(65_557);
    f.seek(std::io::SeekFrom::Start(len - tail))
        .map_err(io_err(path))?;
    let mut buf = vec![0u8; tail as usize];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    if buf.windows(4).any(|w| w == b"PK\x05\x06") {
        Ok(())
    } else {
        Err(CheckpointError::Truncated {
            path: path.to_path_buf(),
            detail: "zip archive has no end-of-central-directory record".into(),
        })
    }
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn check_safetensors(
    path: &Path,
    f: &mut std::fs::File,
    len: u64,
    header_len: u64,
) -> Result<(), CheckpointError> {
    let trunc = |detail: String| CheckpointError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    if header_len > 100 << 20 {
        return Err(CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            detail: format!("safetensors header length {header_len} is implausible"),
        });
    }
    if 8 + header_len > len {
        return Err(trunc(format!(
            "safetensors header needs {} bytes, file has {len}",
            8 + header_len
        )));
    }
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(8)).map_err(io_err(path))?;
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            detail: format!("safetensors header is not JSON: {e}"),
        })?;
    let end = json
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let have = len - 8 - header_len;
    if end > have {
        return Err(trunc(format!(
            "tensor data needs {end} bytes after the header, file has {have}"
        )));
    }
    Ok(())
}

/// Shapes of every tensor (official keys without prefix, PyTorch layout).
fn read_shapes(
    path: &Path,
    format: CheckpointFormat,
) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
    let mut store = open_store(path, format)?;
    let snaps = store.snapshots(path)?;
    Ok(snaps
        .into_iter()
        .map(|(k, s)| (official_key(&k), s))
        .collect())
}

/// The three stores behind one face.
enum Store {
    Pytorch(Box<PytorchStore>),
    Safetensors(Box<SafetensorsStore>),
    Burnpack(Box<BurnpackStore>),
}

fn store_err(path: &Path, format: CheckpointFormat, message: String) -> CheckpointError {
    let p = path.to_path_buf();
    let lower = message.to_lowercase();
    if format == CheckpointFormat::Pytorch
        && (lower.contains("zip") || lower.contains("central directory") || lower.contains("eof"))
    {
        return CheckpointError::Truncated {
            path: p,
            detail: message,
        };
    }
    if lower.contains("eof") || lower.contains("truncat") || lower.contains("out of bounds") {
        return CheckpointError::Truncated {
            path: p,
            detail: message,
        };
    }
    if lower.contains("pickle") || lower.contains("invalid") || lower.contains("dictionary") {
        return CheckpointError::NotACheckpoint {
            path: p,
            detail: message,
        };
    }
    CheckpointError::Store { path: p, message }
}

/// Top-level dictionaries that wrap a state dict in training checkpoints.
const WRAPPERS: [&str; 3] = ["model_state_dict", "state_dict", "model"];

fn open_store(path: &Path, format: CheckpointFormat) -> Result<Store, CheckpointError> {
    open_store_with(path, format, &[])
}

fn open_store_with(
    path: &Path,
    format: CheckpointFormat,
    extra: &[(String, String)],
) -> Result<Store, CheckpointError> {
    let remaps: Vec<(String, String)> = load_remaps()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect();
    Ok(match format {
        CheckpointFormat::Pytorch => {
            // Find a wrapper dictionary, if any, from the flattened keys.
            let mut probe = PytorchStore::from_file(path).map_indices_contiguous(false);
            let keys = probe
                .keys()
                .map_err(|e| store_err(path, format, e.to_string()))?;
            let wrapper = WRAPPERS
                .iter()
                .find(|w| keys.iter().any(|k| k.starts_with(&format!("{w}."))));
            let mut s = PytorchStore::from_file(path);
            if let Some(w) = wrapper {
                s = s.with_top_level_key(*w);
            }
            let mut s = s
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            for (from, to) in &remaps {
                s = s.with_key_remapping(from, to);
            }
            Store::Pytorch(Box::new(s))
        }
        CheckpointFormat::Safetensors => {
            let mut s = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            for (from, to) in &remaps {
                s = s.with_key_remapping(from, to);
            }
            Store::Safetensors(Box::new(s))
        }
        CheckpointFormat::Burnpack => {
            let mut s = BurnpackStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true)
                .validate(false);
            for (from, to) in &remaps {
                s = s.with_remap_pattern(from.as_str(), to.as_str());
            }
            Store::Burnpack(Box::new(s))
        }
    })
}

fn shape_map<S: ModuleStore>(s: &mut S) -> Result<BTreeMap<String, Vec<usize>>, S::Error> {
    Ok(s.get_all_snapshots()?
        .iter()
        .map(|(k, v)| (k.clone(), v.shape.to_vec()))
        .collect())
}

impl Store {
    fn format(&self) -> CheckpointFormat {
        match self {
            Store::Pytorch(_) => CheckpointFormat::Pytorch,
            Store::Safetensors(_) => CheckpointFormat::Safetensors,
            Store::Burnpack(_) => CheckpointFormat::Burnpack,
        }
    }

    fn snapshots(&mut self, path: &Path) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
        let f = self.format();
        match self {
            Store::Pytorch(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
            Store::Safetensors(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
            Store::Burnpack(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
        }
    }

    fn apply<B: Backend>(
        &mut self,
        path: &Path,
        model: &mut VmUnet<B>,
    ) -> Result<ApplyResult, CheckpointError> {
        let f = self.format();
        match self {
            Store::Pytorch(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
            Store::Safetensors(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
            Store::Burnpack(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
        }
    }
}

/// The burnpack metadata entry holding the training input size.
const INPUT_SIZE_KEY: &str = "input_size";
const HISTORY_KEY: &str = "compression";

/// The string entries of a burnpack file's metadata (the CBOR block after the 10-byte header:
/// magic, format version, metadata length).
fn burnpack_metadata(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    #[derive(serde::Deserialize)]
    struct Block {
        #[serde(default)]
        metadata: BTreeMap<String, String>,
    }
    use std::io::Read;
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

/// Reads a checkpoint's tensor shapes and infers its configuration.
pub fn inspect(path: &Path) -> Result<CheckpointInfo, CheckpointError> {
    let format = detect_format(path)?;
    let shapes = read_shapes(path, format)?;
    if shapes.is_empty() {
        return Err(CheckpointError::NotVmUnet {
            path: path.to_path_buf(),
            detail: "the file holds no tensors".into(),
        });
    }
    let config = infer_config(&shapes).map_err(|detail| CheckpointError::NotVmUnet {
        path: path.to_path_buf(),
        detail,
    })?;
    config
        .validate()
        .map_err(|source| CheckpointError::Config {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = match format {
        CheckpointFormat::Burnpack => burnpack_metadata(path)?,
        _ => BTreeMap::new(),
    };
    let history = meta.get(HISTORY_KEY).cloned();
    let input_size = match format {
        CheckpointFormat::Burnpack => meta
            .get(INPUT_SIZE_KEY)
            .map(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&s| s > 0 && s % config.size_multiple() == 0)
                    .ok_or_else(|| CheckpointError::NotVmUnet {
                        path: path.to_path_buf(),
                        detail: format!(
                            "recorded input size `{v}` is not a positive multiple of {}",
                            config.size_multiple()
                        ),
                    })
            })
            .transpose()?,
        _ => None,
    };
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        format,
        shapes,
        config,
        input_size,
        history,
    })
}

/// Loads a checkpoint, inferring its configuration from the tensor shapes.
pub fn load<B: ScanBackend>(
    path: &Path,
    device: &B::Device,
) -> Result<(VmUnet<B>, CheckpointInfo), CheckpointError> {
    let info = inspect(path)?;
    let model = load_with_config(path, &info.config, device)?;
    Ok((model, info))
}

/// Loads a checkpoint into a model built from `config`; every key must match.
pub fn load_with_config<B: ScanBackend>(
    path: &Path,
    config: &VmUnetConfig,
    device: &B::Device,
) -> Result<VmUnet<B>, CheckpointError> {
    let format = detect_format(path)?;
    let mut model = config
        .init::<B>(device)
        .map_err(|source| CheckpointError::Config {
            path: path.to_path_buf(),
            source,
        })?;
    let mut store = open_store(path, format)?;
    let result = store.apply(path, &mut model)?;
    check_result(path, &result)?;
    Ok(model)
}

fn check_result(path: &Path, r: &ApplyResult) -> Result<(), CheckpointError> {
    let mut mismatches = Vec::new();
    for e in &r.errors {
        match e {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => mismatches.push(ShapeMismatch {
                key: official_key(key),
                expected: expected.to_vec(),
                found: found.to_vec(),
            }),
            other => {
                return Err(CheckpointError::Store {
                    path: path.to_path_buf(),
                    message: other.to_string(),
                })
            }
        }
    }
    if !mismatches.is_empty() {
        return Err(CheckpointError::Shapes {
            path: path.to_path_buf(),
            mismatches,
        });
    }
    // burn-store lists LayerNorm `weight`/`bias` as unused even when it applied them as
    // `gamma`/`beta`; only keys that reached no parameter are unexpected.
    let applied: std::collections::HashSet<String> =
        r.applied.iter().map(|k| official_key(k)).collect();
    let unexpected: Vec<String> = r
        .unused
        .iter()
        .map(|k| official_key(k))
        .filter(|k| !applied.contains(k))
        .collect();
    if !r.missing.is_empty() || !unexpected.is_empty() {
        return Err(CheckpointError::Keys {
            path: path.to_path_buf(),
            missing: r.missing.iter().map(|(k, _)| official_key(k)).collect(),
            unexpected,
        });
    }
    Ok(())
}

/// What [`load_pretrained`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedReport {
    /// `true` for a whole VM-UNet checkpoint, `false` for a VMamba (encoder) checkpoint.
    pub whole_model: bool,
    /// Parameters copied (the decoder copies of VMamba stages counted again).
    pub copied: usize,
    /// Checkpoint keys whose shape differs from the model's, left at their initial values.
    pub skipped: Vec<ShapeMismatch>,
    /// Model parameters the checkpoint does not provide.
    pub missing: usize,
}

/// Initialises `model` from pretrained weights the way the official `VMUNet.load_from` does:
/// a whole VM-UNet checkpoint is loaded as is (every shape must match); a VMamba ImageNet
/// checkpoint (keys `patch_embed.*`, `layers.i.*`) fills the encoder, then `layers.0..3` fill
/// the decoder stages `layers_up.3..0`. Keys the model lacks are ignored, as there.
pub fn load_pretrained<B: Backend>(
    mut model: VmUnet<B>,
    path: &Path,
) -> Result<(VmUnet<B>, PretrainedReport), CheckpointError> {
    let format = detect_format(path)?;
    let shapes = read_shapes(path, format)?;
    let whole = shapes.keys().any(|k| k.contains("layers_up."));
    let stages = model.layers.len();
    let mut passes: Vec<Vec<(String, String)>> = vec![vec![]];
    if !whole {
        passes.push(
            (0..stages)
                .map(|i| {
                    (
                        format!(r"^layers\.{i}\."),
                        format!("layers_up.{}.", stages - 1 - i),
                    )
                })
                .collect(),
        );
    }
    let mut report = PretrainedReport {
        whole_model: whole,
        copied: 0,
        skipped: Vec::new(),
        missing: 0,
    };
    let mut missing = std::collections::BTreeSet::new();
    for (i, extra) in passes.iter().enumerate() {
        let mut store = open_store_with(path, format, extra)?;
        let r = store.apply(path, &mut model)?;
        report.copied += r.applied.len();
        for e in &r.errors {
            if let ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } = e
            {
                report.skipped.push(ShapeMismatch {
                    key: official_key(key),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                });
            }
        }
        let these: std::collections::BTreeSet<String> =
            r.missing.iter().map(|(k, _)| k.clone()).collect();
        missing = if i == 0 {
            these
        } else {
            missing.intersection(&these).cloned().collect()
        };
    }
    if whole && !report.skipped.is_empty() {
        return Err(CheckpointError::Shapes {
            path: path.to_path_buf(),
            mismatches: report.skipped,
        });
    }
    if report.copied == 0 {
        return Err(CheckpointError::NotVmUnet {
            path: path.to_path_buf(),
            detail: "no key matches a VM-UNet or VMamba parameter".into(),
        });
    }
    report.missing = missing.len();
    Ok((model, report))
}

/// Saves the model as a burnpack record with official key names and PyTorch layouts,
/// atomically (temporary file, then rename).
pub fn save<B: Backend>(model: &VmUnet<B>, path: &Path) -> Result<(), CheckpointError> {
    save_with_input_size(model, path, None)
}

/// [`save`], recording the input size (H = W) the model was trained at
/// ([`CheckpointInfo::input_size`]).
pub fn save_with_input_size<B: Backend>(
    model: &VmUnet<B>,
    path: &Path,
    input_size: Option<usize>,
) -> Result<(), CheckpointError> {
    save_with_history(model, path, input_size, None)
}

/// [`save_with_input_size`], also recording what was done to the model (a JSON list of
/// compression steps, e.g. structured pruning; [`CheckpointInfo::history`]). The export
/// copies it into the ONNX metadata.
pub fn save_with_history<B: Backend>(
    model: &VmUnet<B>,
    path: &Path,
    input_size: Option<usize>,
    history: Option<&str>,
) -> Result<(), CheckpointError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.bpk".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut s = BurnpackStore::from_file(&tmp)
        .with_to_adapter(BurnToPyTorchAdapter)
        .auto_extension(false)
        .overwrite(true)
        .metadata("model", "vm-unet");
    if let Some(size) = input_size {
        s = s.metadata(INPUT_SIZE_KEY, size.to_string());
    }
    if let Some(h) = history {
        s = s.metadata(HISTORY_KEY, h.to_string());
    }
    for (from, to) in save_remaps() {
        s = s.with_remap_pattern(from.as_str(), to.as_str());
    }
    let res = model.save_into(&mut s).map_err(|e| CheckpointError::Store {
        path: path.to_path_buf(),
        message: e.to_string(),
    });
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Infers the configuration from official keys and PyTorch-layout shapes.
pub fn infer_config(shapes: &BTreeMap<String, Vec<usize>>) -> Result<VmUnetConfig, String> {
    let get = |k: &str| -> Result<&Vec<usize>, String> {
        shapes.get(k).ok_or_else(|| format!("key `{k}` is missing"))
    };
    let dim = |k: &str, rank: usize, i: usize| -> Result<usize, String> {
        let s = get(k)?;
        if s.len() != rank {
            return Err(format!("`{k}` has shape {s:?}, expected rank {rank}"));
        }
        Ok(s[i])
    };
    let count = |prefix: &str| -> usize {
        let mut idx = std::collections::BTreeSet::new();
        for k in shapes.keys() {
            if let Some(rest) = k.strip_prefix(prefix) {
                if let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok()) {
                    idx.insert(i);
                }
            }
        }
        idx.len()
    };
    let pe = get("patch_embed.proj.weight")?;
    if pe.len() != 4 || pe[2] != pe[3] {
        return Err(format!(
            "`patch_embed.proj.weight` has shape {pe:?}, expected (C0, C_in, p, p)"
        ));
    }
    let (c0, input_channels, patch_size) = (pe[0], pe[1], pe[2]);
    let stages = count("layers.");
    if stages == 0 || count("layers_up.") != stages {
        return Err(format!(
            "found {stages} encoder and {} decoder stages (`layers.*`, `layers_up.*`)",
            count("layers_up.")
        ));
    }
    let mut dims = Vec::new();
    let mut depths = Vec::new();
    let mut depths_decoder = Vec::new();
    let mut ranks = Vec::new();
    let mut d_conv = None;
    // (C, d_inner, d_state) per block, encoder then decoder: uniform for a trained model,
    // per block after structured pruning.
    let mut blocks: Vec<(usize, usize, usize)> = Vec::new();
    for i in 0..stages {
        depths.push(count(&format!("layers.{i}.blocks.")));
        depths_decoder.push(count(&format!("layers_up.{i}.blocks.")));
    }
    for (stage_prefix, counts) in [("layers", &depths), ("layers_up", &depths_decoder)] {
        for (i, &n) in counts.iter().enumerate() {
            for b in 0..n {
                let p = format!("{stage_prefix}.{i}.blocks.{b}");
                let c = dim(&format!("{p}.ln_1.weight"), 1, 0)?;
                if stage_prefix == "layers" && b == 0 {
                    dims.push(c);
                }
                let sa = format!("{p}.self_attention");
                let inner2 = dim(&format!("{sa}.in_proj.weight"), 2, 0)?;
                let st = dim(&format!("{sa}.A_logs"), 2, 1)?;
                let k = dim(&format!("{sa}.conv2d.weight"), 4, 2)?;
                let r = dim(&format!("{sa}.dt_projs_weight"), 3, 2)?;
                if inner2 % 2 != 0 || inner2 == 0 {
                    return Err(format!(
                        "`{sa}.in_proj.weight` has {inner2} rows, expected 2 x d_inner"
                    ));
                }
                match d_conv {
                    None => d_conv = Some(k),
                    Some(prev) if prev != k => {
                        return Err(format!(
                            "d_conv differs between blocks ({prev} vs {k} in {p})"
                        ))
                    }
                    _ => {}
                }
                blocks.push((c, inner2 / 2, st));
                ranks.push((c, r));
            }
        }
    }
    let Some(&first) = blocks.first() else {
        return Err("the model has no VSS blocks".into());
    };
    let uniform_expand = (first.1 % first.0 == 0).then_some(first.1 / first.0);
    let uniform = uniform_expand.is_some_and(|e| {
        blocks
            .iter()
            .all(|&(c, inner, st)| inner == e * c && st == first.2)
    });
    let (expand, d_state, block_widths) = if uniform {
        (uniform_expand, Some(first.2), None)
    } else {
        // A pruned model: the nominal expansion and state size, and every block's widths.
        let widths = blocks
            .iter()
            .map(|&(_, d_inner, d_state)| crate::BlockWidth { d_inner, d_state })
            .collect();
        let max_state = blocks.iter().map(|b| b.2).max();
        (Some(2), max_state, Some(widths))
    };
    if dims.first() != Some(&c0) {
        return Err(format!(
            "patch embedding width {c0} differs from the first stage width {:?}",
            dims.first()
        ));
    }
    let dt_rank = if ranks.iter().all(|&(c, r)| r == c.div_ceil(16)) {
        None
    } else if ranks.windows(2).all(|w| w[0].1 == w[1].1) {
        Some(ranks[0].1)
    } else {
        return Err("dt_rank is neither ceil(C/16) per stage nor one value".into());
    };
    let num_classes = dim("final_conv.weight", 4, 0)?;
    Ok(VmUnetConfig::new()
        .with_input_channels(input_channels)
        .with_num_classes(num_classes)
        .with_dims(dims)
        .with_depths(depths)
        .with_depths_decoder(depths_decoder)
        .with_d_state(d_state.unwrap_or(16))
        .with_d_conv(d_conv.unwrap_or(3))
        .with_ssm_expand(expand.unwrap_or(2))
        .with_dt_rank(dt_rank)
        .with_patch_size(patch_size)
        .with_block_widths(block_widths))
}
