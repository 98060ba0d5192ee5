//! The vmunet entries of an ONNX file's `metadata_props`: one typed struct, one reader, one
//! writer.

use crate::pb::StringStringEntryProto;
use crate::ScanForm;

/// The metadata keys (the names existing files use).
pub mod keys {
    /// Architecture config (JSON of `VmUnetConfig`).
    pub const CONFIG: &str = "vmunet.config";
    /// Output activation: `sigmoid` or `softmax`.
    pub const OUTPUT_ACTIVATION: &str = "vmunet.output_activation";
    /// Preprocessing the model expects: `isic` (photos) or `synapse` (CT).
    pub const PREPROCESSING: &str = "vmunet.preprocessing";
    /// Class names, comma-separated, one per output channel.
    pub const CLASS_NAMES: &str = "vmunet.class_names";
    /// Scan formulation: `scan`, `chunked` or `custom`.
    pub const SCAN: &str = "vmunet.scan";
    /// Chunk length of the chunked scan.
    pub const CHUNK: &str = "vmunet.chunk";
    /// Input size: `HxW` (fixed) or `dynamic`.
    pub const INPUT_SIZE: &str = "vmunet.input_size";
    /// Largest input side of a size-dynamic export, when it has one.
    pub const MAX_SIZE: &str = "vmunet.max_size";
    /// Numeric precision of weights and compute: `fp32`, `fp16`, `int8` or `mixed`.
    pub const PRECISION: &str = "vmunet.precision";
    /// The checkpoint (or preset) exported.
    pub const SOURCE: &str = "vmunet.source";
    /// SHA-256 of the checkpoint file, lowercase hex.
    pub const SOURCE_SHA256: &str = "vmunet.source_sha256";
    /// Version of the vmunet toolkit that wrote the file.
    pub const TOOLKIT_VERSION: &str = "vmunet.toolkit_version";
    /// Compression steps applied after export (JSON list).
    pub const COMPRESSION: &str = "vmunet.compression";

    /// Every key with its meaning, in the order the writer emits them.
    pub const ALL: [(&str, &str); 13] = [
        (CONFIG, "architecture config (JSON of `VmUnetConfig`)"),
        (OUTPUT_ACTIVATION, "`sigmoid` or `softmax`"),
        (
            PREPROCESSING,
            "`isic` (photos: per-image min-max) or `synapse` (CT: HU window [-125, 275])",
        ),
        (
            CLASS_NAMES,
            "class names, comma-separated, one per output channel",
        ),
        (SCAN, "scan formulation: `scan`, `chunked` or `custom`"),
        (CHUNK, "chunk length (chunked scan only)"),
        (
            MAX_SIZE,
            "largest input side (size-dynamic chunked exports)",
        ),
        (INPUT_SIZE, "`HxW` (fixed) or `dynamic` (multiples of 32)"),
        (PRECISION, "`fp32`, `fp16`, `int8` or `mixed`"),
        (TOOLKIT_VERSION, "vmunet version that wrote the file"),
        (SOURCE, "checkpoint or preset exported"),
        (SOURCE_SHA256, "SHA-256 of the checkpoint file"),
        (
            COMPRESSION,
            "compression steps applied (JSON list; absent when none)",
        ),
    ];
}

/// A bad metadata entry; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata `{key}`: {reason}")]
pub struct MetadataError {
    /// The key.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> MetadataError {
    MetadataError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The preprocessing a model was trained with, applied from the metadata by every front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preprocessing {
    /// Photos (the official ISIC transform): per-image min-max rescale of all channels jointly
    /// to [0, 255], bilinear resize to the model size; masks resized back bilinearly.
    #[default]
    Isic,
    /// CT (the official Synapse setting): Hounsfield units clipped to [-125, 275] and scaled to
    /// [0, 1], each slice zoomed to the model size (cubic spline); the predicted labels zoomed
    /// back (nearest).
    Synapse,
}

impl Preprocessing {
    /// The lower end of the Synapse Hounsfield window.
    pub const HU_MIN: f32 = -125.0;
    /// The upper end of the Synapse Hounsfield window.
    pub const HU_MAX: f32 = 275.0;

    /// The metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isic => "isic",
            Self::Synapse => "synapse",
        }
    }

    /// What it does, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Isic => "per-image min-max rescale of all channels jointly to [0,255], bilinear resize to the model size",
            Self::Synapse => "Hounsfield units clipped to [-125,275] and scaled to [0,1], each slice zoomed to the model size (cubic), labels zoomed back (nearest)",
        }
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Preprocessing {
    type Err = String;
    /// `isic` or `synapse`; files written before the value was typed recorded the ISIC
    /// transform in words (`per-image min-max ...`), read as `isic`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "isic" => Ok(Self::Isic),
            "synapse" => Ok(Self::Synapse),
            o if o.starts_with("per-image min-max") => Ok(Self::Isic),
            o => Err(format!(
                "unknown preprocessing `{o}` (expected isic or synapse)"
            )),
        }
    }
}

/// The class names a model gets when none are given: `foreground` for one class, the Synapse
/// organs (after `background`) for a nine-class Synapse model, else `class_<i>`. Their names
/// key the codes of DICOM Segmentation segments.
pub fn default_class_names(
    num_classes: usize,
    preprocessing: Option<Preprocessing>,
) -> Vec<String> {
    let organs = vmunet_metrics::SYNAPSE_ORGANS;
    if num_classes == 1 {
        vec!["foreground".to_string()]
    } else if num_classes == 1 + organs.len() && preprocessing == Some(Preprocessing::Synapse) {
        std::iter::once("background")
            .chain(organs)
            .map(str::to_string)
            .collect()
    } else {
        (0..num_classes).map(|i| format!("class_{i}")).collect()
    }
}

/// The model's output activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// One class: per-pixel sigmoid.
    Sigmoid,
    /// Several classes: softmax over the class axis.
    Softmax,
}

impl Activation {
    /// The metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigmoid => "sigmoid",
            Self::Softmax => "softmax",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sigmoid" => Ok(Self::Sigmoid),
            "softmax" => Ok(Self::Softmax),
            o => Err(format!(
                "unknown activation `{o}` (expected sigmoid or softmax)"
            )),
        }
    }
}

/// Numeric precision of a model's weights and compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// float32 throughout.
    Fp32,
    /// float16 weights and compute.
    Fp16,
    /// int8 (quantized) weights and/or activations.
    Int8,
    /// Several precisions in one graph.
    Mixed,
}

impl Precision {
    /// The metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Int8 => "int8",
            Self::Mixed => "mixed",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Fp32, Self::Fp16, Self::Int8, Self::Mixed]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown precision `{s}` (expected fp32, fp16, int8 or mixed)"))
    }
}

/// The input size a model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSize {
    /// Exactly `height` x `width`.
    Fixed {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// Any multiple of 32, at most `max_size` on each side when set.
    Dynamic {
        /// Largest side.
        max_size: Option<usize>,
    },
}

/// One compression step applied to an exported model (pruning, quantization, ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompressionStep {
    /// What was done, e.g. `int8-weights`.
    pub kind: String,
    /// Its parameters.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The tool and version that applied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// The vmunet entries of `metadata_props`, typed. Unknown keys are kept in
/// [`ModelMetadata::extra`] and written back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelMetadata {
    /// Architecture config as JSON text (consumers parse it into `VmUnetConfig`).
    pub config: Option<String>,
    /// Output activation.
    pub output_activation: Option<Activation>,
    /// Preprocessing the model expects.
    pub preprocessing: Option<Preprocessing>,
    /// Class names, one per output channel (names cannot contain commas).
    pub class_names: Vec<String>,
    /// Scan formulation.
    pub scan: Option<ScanForm>,
    /// Chunk length of [`ScanForm::Chunked`].
    pub chunk: Option<usize>,
    /// Input size.
    pub input_size: Option<InputSize>,
    /// Precision.
    pub precision: Option<Precision>,
    /// vmunet version that wrote the file.
    pub toolkit_version: Option<String>,
    /// Checkpoint (or preset) exported.
    pub source: Option<String>,
    /// SHA-256 of the checkpoint file (lowercase hex).
    pub source_sha256: Option<String>,
    /// Compression steps applied, in order.
    pub compression: Vec<CompressionStep>,
    /// Entries with other keys, in file order.
    pub extra: Vec<(String, String)>,
}

fn positive(key: &str, v: &str) -> Result<usize, MetadataError> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad(key, format!("`{v}` is not a positive integer"))),
    }
}

impl ModelMetadata {
    /// Reads `metadata_props`. Bad values of known keys and repeated known keys are errors.
    pub fn from_props(props: &[StringStringEntryProto]) -> Result<Self, MetadataError> {
        let mut m = Self::default();
        let mut seen = std::collections::HashSet::new();
        let mut max_size = None;
        let mut size_kind: Option<String> = None;
        for e in props {
            let (key, v) = (e.key(), e.value());
            let known = keys::ALL.iter().any(|(k, _)| *k == key);
            if !known {
                m.extra.push((key.to_string(), v.to_string()));
                continue;
            }
            if !seen.insert(key.to_string()) {
                return Err(bad(key, "appears more than once"));
            }
            match key {
                keys::CONFIG => {
                    serde_json::from_str::<serde_json::Value>(v)
                        .map_err(|e| bad(key, format!("not JSON: {e}")))?;
                    m.config = Some(v.to_string());
                }
                keys::OUTPUT_ACTIVATION => {
                    m.output_activation = Some(v.parse().map_err(|e: String| bad(key, e))?)
                }
                keys::PREPROCESSING => {
                    m.preprocessing = Some(v.parse().map_err(|e: String| bad(key, e))?)
                }
                keys::CLASS_NAMES => {
                    m.class_names = if v.is_empty() {
                        Vec::new()
                    } else {
                        v.split(',').map(str::to_string).collect()
                    }
                }
                keys::SCAN => {
                    m.scan = Some(
                        v.parse()
                            .map_err(|e: crate::UnknownScanForm| bad(key, e.to_string()))?,
                    )
                }
                keys::CHUNK => m.chunk = Some(positive(key, v)?),
                keys::MAX_SIZE => max_size = Some(positive(key, v)?),
                keys::INPUT_SIZE => size_kind = Some(v.to_string()),
                keys::PRECISION => m.precision = Some(v.parse().map_err(|e: String| bad(key, e))?),
                keys::TOOLKIT_VERSION => m.toolkit_version = Some(v.to_string()),
                keys::SOURCE => m.source = Some(v.to_string()),
                keys::SOURCE_SHA256 => {
                    let ok = v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
                    if !ok {
                        return Err(bad(key, format!("`{v}` is not 64 hexadecimal digits")));
                    }
                    m.source_sha256 = Some(v.to_ascii_lowercase());
                }
                keys::COMPRESSION => {
                    m.compression = serde_json::from_str(v)
                        .map_err(|e| bad(key, format!("not a list of compression steps: {e}")))?
                }
                _ => unreachable!("every key of keys::ALL is matched"),
            }
        }
        m.input_size = match size_kind.as_deref() {
            None => max_size.map(|m| InputSize::Dynamic { max_size: Some(m) }),
            Some("dynamic") => Some(InputSize::Dynamic { max_size }),
            Some(s) => {
                let parsed = s
                    .split_once('x')
                    .and_then(|(h, w)| Some((h.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
                    .filter(|&(h, w)| h > 0 && w > 0);
                let (height, width) = parsed.ok_or_else(|| {
                    bad(
                        keys::INPUT_SIZE,
                        format!("`{s}` is neither HxW nor `dynamic`"),
                    )
                })?;
                if max_size.is_some() {
                    return Err(bad(keys::MAX_SIZE, "set for a fixed-size input"));
                }
                Some(InputSize::Fixed { height, width })
            }
        };
        Ok(m)
    }

    /// Writes the entries (known keys in [`keys::ALL`] order, then [`ModelMetadata::extra`]).
    pub fn to_props(&self) -> Vec<StringStringEntryProto> {
        let mut out: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &self.config {
            out.push((keys::CONFIG, c.clone()));
        }
        if let Some(a) = self.output_activation {
            out.push((keys::OUTPUT_ACTIVATION, a.as_str().into()));
        }
        if let Some(p) = self.preprocessing {
            out.push((keys::PREPROCESSING, p.as_str().into()));
        }
        if !self.class_names.is_empty() {
            out.push((keys::CLASS_NAMES, self.class_names.join(",")));
        }
        if let Some(s) = self.scan {
            out.push((keys::SCAN, s.as_str().into()));
        }
        if let Some(c) = self.chunk {
            out.push((keys::CHUNK, c.to_string()));
        }
        match self.input_size {
            Some(InputSize::Fixed { height, width }) => {
                out.push((keys::INPUT_SIZE, format!("{height}x{width}")))
            }
            Some(InputSize::Dynamic { max_size }) => {
                if let Some(m) = max_size {
                    out.push((keys::MAX_SIZE, m.to_string()));
                }
                out.push((keys::INPUT_SIZE, "dynamic".into()));
            }
            None => {}
        }
        if let Some(p) = self.precision {
            out.push((keys::PRECISION, p.as_str().into()));
        }
        if let Some(v) = &self.toolkit_version {
            out.push((keys::TOOLKIT_VERSION, v.clone()));
        }
        if let Some(s) = &self.source {
            out.push((keys::SOURCE, s.clone()));
        }
        if let Some(s) = &self.source_sha256 {
            out.push((keys::SOURCE_SHA256, s.clone()));
        }
        if !self.compression.is_empty() {
            let json = serde_json::to_string(&self.compression)
                .unwrap_or_else(|_| unreachable!("compression steps serialise to JSON"));
            out.push((keys::COMPRESSION, json));
        }
        out.into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.extra.iter().cloned())
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key),
                value: Some(value),
            })
            .collect()
    }

    /// The largest input side, for size-dynamic exports that record one.
    pub fn max_size(&self) -> Option<usize> {
        match self.input_size {
            Some(InputSize::Dynamic { max_size }) => max_size,
            _ => None,
        }
    }

    /// Whether the file was written by the vmunet exporter (it records the config).
    pub fn is_vmunet(&self) -> bool {
        self.config.is_some()
    }
}
