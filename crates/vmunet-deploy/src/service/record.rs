//! What the service writes about an image: its JSON record (`OUT/STEM.json`), its audit lines
//! (`OUT/audit.jsonl`) and the reason file of an image set aside.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::journal::ImageKey;

/// Per-image record (`OUT/STEM.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// File name in the watched folder.
    pub image: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Displayed width.
    pub width: u32,
    /// Displayed height.
    pub height: u32,
    /// Model file.
    pub model: String,
    /// Model SHA-256.
    pub model_sha256: String,
    /// What ran it.
    pub runtime: String,
    /// Execution provider.
    pub provider: String,
    /// Model input (H, W).
    pub input_size: (usize, usize),
    /// Foreground threshold.
    pub threshold: f32,
    /// Seconds per stage.
    pub timings: ImageTimings,
    /// Lesion (foreground) area.
    pub lesion: Lesion,
    /// `STEM_mask.png`.
    pub mask: String,
    /// `STEM_overlay.png`.
    pub overlay: String,
    /// When the service first saw the file (UTC).
    pub arrived: String,
    /// When the mask was durable (UTC).
    pub finished: String,
    /// vmunet version.
    pub toolkit_version: String,
}

/// Seconds per stage of one image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ImageTimings {
    /// Reading and hashing the file.
    pub read: f64,
    /// Decoding.
    pub decode: f64,
    /// Preprocessing.
    pub preprocess: f64,
    /// The model.
    pub inference: f64,
    /// Activation, resize back, threshold.
    pub postprocess: f64,
    /// Encoding and durably writing the outputs.
    pub write: f64,
    /// From arrival (first seen) to the mask on disk, waiting included.
    pub latency: f64,
}

/// Foreground area of the mask.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Lesion {
    /// Pixels.
    pub pixels: u64,
    /// Fraction of the image.
    pub fraction: f64,
}

impl Lesion {
    /// The foreground of `mask` (class > 0), counted once.
    pub fn of(mask: &vmunet_data::Mask) -> Self {
        let pixels = mask.foreground_pixels();
        Self {
            pixels,
            fraction: pixels as f64 / mask.data.len().max(1) as f64,
        }
    }
}

/// The model an outcome is attributed to, as the audit log and reason files name it.
pub(super) struct ModelId<'a> {
    /// The model file, displayed.
    pub file: &'a str,
    /// Its SHA-256.
    pub sha256: &'a str,
}

/// The audit line of an image done (`recovered`: found complete at start after a crash).
pub(super) fn done_audit_line(
    key: &ImageKey,
    stem: &str,
    record: &ImageRecord,
    recovered: bool,
) -> serde_json::Value {
    let mut v = json!({
        "time": crate::utc_timestamp(crate::unix_now()),
        "image": key.name,
        "sha256": key.sha256,
        "outcome": "done",
        "outputs": [record.mask, record.overlay, format!("{stem}.json")],
        "model": record.model,
        "model_sha256": record.model_sha256,
        "runtime": record.runtime,
        "provider": record.provider,
        "lesion_fraction": record.lesion.fraction,
    });
    if recovered {
        v["recovered"] = true.into();
    }
    v
}

/// The audit line of an image set aside at `unix` time, moved to `failed/{target}`.
pub(super) fn failed_audit_line(
    key: &ImageKey,
    unix: f64,
    target: &str,
    reason: &str,
    model: &ModelId,
) -> serde_json::Value {
    json!({
        "time": crate::utc_timestamp(unix),
        "image": key.name,
        "sha256": key.sha256,
        "outcome": "failed",
        "moved_to": format!("failed/{target}"),
        "reason": reason,
        "model": model.file,
        "model_sha256": model.sha256,
    })
}

/// The audit line of an image a crash interrupted after it was moved to `failed/` (found
/// there at start).
pub(super) fn recovered_failed_audit_line(key: &ImageKey, model_sha256: &str) -> serde_json::Value {
    json!({
        "time": crate::utc_timestamp(crate::unix_now()),
        "image": key.name,
        "sha256": key.sha256,
        "outcome": "failed",
        "recovered": true,
        "moved_to": format!("failed/{}", key.name),
        "model_sha256": model_sha256,
    })
}

/// The text of `failed/NAME.reason.txt` for an image set aside at `unix` time.
pub(super) fn reason_text(key: &ImageKey, unix: f64, reason: &str, model: &ModelId) -> String {
    format!(
        "image: {}\nsha256: {}\ntime: {}\nmodel: {} (sha256 {})\nreason: {reason}\n",
        key.name,
        key.sha256,
        crate::utc_timestamp(unix),
        model.file,
        model.sha256
    )
}
