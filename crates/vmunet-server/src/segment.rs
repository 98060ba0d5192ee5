//! The segmentation extension: `POST /v2/models/{m}/segment` with an encoded photo as the
//! body answers the mask as a PNG at the photo's size, or with `Accept: application/json` the
//! record the watch-folder service writes (mask and, on request, overlay as PNG data URLs).
//! The photo goes through the library pipeline: decode (structure checked, EXIF orientation,
//! a pixel limit read from the header), the plan's preprocessing, the model's batching queue,
//! the plan's mask. Recent results are kept (bounded) for the page.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use hyper::StatusCode;
use image::DynamicImage;
use serde::Serialize;
use serde_json::{json, Value};
use vmunet_data::{decode_image_limited, output_stem, overlay, DataError, DecodeLimits, Mask};
use vmunet_deploy::service::{ImageRecord, ImageTimings, Lesion};
use vmunet_runtime::OutputNames;

use crate::model::ServedModel;
use crate::ApiError;

/// One segmented photo, as the page and `Accept: application/json` see it: the record the
/// watch-folder service writes (`vmunet_deploy::service::ImageRecord`: image and model SHA-256,
/// runtime, stage times, lesion area, `STEM_mask.png` / `STEM_overlay.png` as the names the
/// downloads take), with the result's id and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRecord {
    /// Result id (`/v2/vmunet/results/{id}/...`).
    pub id: String,
    /// Where it came from: `http`.
    pub source: &'static str,
    /// The record.
    #[serde(flatten)]
    pub record: ImageRecord,
}

/// A result kept for the page.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The record.
    pub record: SegmentRecord,
    /// The mask PNG.
    pub mask_png: bytes::Bytes,
}

/// The most recent results (bounded).
#[derive(Debug)]
pub struct Recent {
    items: Mutex<VecDeque<Kept>>,
    capacity: usize,
    next: std::sync::atomic::AtomicU64,
}

impl Recent {
    /// Keeps at most `capacity` results.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn id(&self) -> String {
        format!(
            "r{}",
            self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    }

    fn push(&self, k: Kept) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back(k);
    }

    /// The records, newest first.
    pub fn records(&self) -> Vec<SegmentRecord> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.iter().rev().map(|k| k.record.clone()).collect()
    }

    /// A kept result by id.
    pub fn get(&self, id: &str) -> Option<Kept> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.iter().find(|k| k.record.id == id).cloned()
    }
}

/// What `/segment` answers.
pub struct Segmented {
    /// The record.
    pub record: SegmentRecord,
    /// The mask PNG.
    pub mask_png: bytes::Bytes,
    /// The overlay PNG, when asked for.
    pub overlay_png: Option<Vec<u8>>,
}

impl Segmented {
    /// The JSON answer: the record with the mask (and overlay) as PNG data URLs.
    pub fn json(&self) -> Value {
        let b64 = |b: &[u8]| {
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        };
        let mut v = serde_json::to_value(&self.record).unwrap_or_else(|_| json!({}));
        // The file names become the files themselves.
        if let Value::Object(m) = &mut v {
            m.insert("mask".into(), json!(b64(&self.mask_png)));
            m.insert(
                "overlay".into(),
                self.overlay_png
                    .as_deref()
                    .map(b64)
                    .map_or(Value::Null, Value::String),
            );
        }
        v
    }
}

fn data_error(e: DataError) -> ApiError {
    match e {
        DataError::TooManyPixels { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Encodes a PNG with the library's one encoder ([`vmunet_data::encode_png`]); `name` says
/// which output in an error.
fn png(img: &DynamicImage, name: &str) -> Result<Vec<u8>, ApiError> {
    vmunet_data::encode_png(img, Path::new(name))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A blocking task that did not finish (it panicked or the runtime is stopping).
fn join_error(stage: &str, e: tokio::task::JoinError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{stage} failed: {e}"),
    )
}

/// Segments the photo `bytes` named `name` with `model`.
pub async fn segment(
    model: &ServedModel,
    recent: &Recent,
    image_slots: &tokio::sync::Semaphore,
    name: String,
    bytes: bytes::Bytes,
    limits: DecodeLimits,
    want_overlay: bool,
) -> Result<Segmented, ApiError> {
    let plan = model.info.plan;
    let busy = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    let slot = image_slots.acquire().await.map_err(|_| busy())?;
    let t0 = Instant::now();
    let name2 = name.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let img = decode_image_limited(Path::new(&name2), &bytes, &limits).map_err(data_error)?;
        let t1 = Instant::now();
        let x = plan.input(&img);
        let sha = vmunet_fs::sha256_hex(&bytes);
        Ok::<_, ApiError>((img, x, sha, t1))
    })
    .await
    .map_err(|e| join_error("decoding", e))??;
    let (img, x, sha, t1) = prepared;
    let decode = (t1 - t0).as_secs_f64();
    let t2 = Instant::now();
    let preprocess = (t2 - t1).as_secs_f64();
    // The decoded photo waits for the model without its slot; the pixels it holds are the
    // photo's own (RGB8), the float copies are gone.
    drop(slot);
    let y = model.infer(x).await?;
    let slot = image_slots.acquire().await.map_err(|_| busy())?;
    let t3 = Instant::now();
    let (mask, mask_png, overlay_png, t4) = tokio::task::spawn_blocking(move || {
        let size = (img.height() as usize, img.width() as usize);
        let mask: Mask = plan.mask(&y, 0, size).ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the model returned logits of shape {:?}", y.shape),
            )
        })?;
        let t4 = Instant::now();
        let mask_png = png(&DynamicImage::ImageLuma8(mask.to_image()), "mask.png")?;
        let over = if want_overlay {
            Some(png(
                &DynamicImage::ImageRgb8(overlay(&img, &mask)),
                "overlay.png",
            )?)
        } else {
            None
        };
        Ok::<_, ApiError>((mask, mask_png, over, t4))
    })
    .await
    .map_err(|e| join_error("postprocessing", e))??;
    drop(slot);
    let info = &model.info;
    let names = OutputNames::new(output_stem(Path::new(&name)));
    let finished = vmunet_deploy::unix_now();
    let latency = t0.elapsed().as_secs_f64();
    let record = SegmentRecord {
        id: recent.id(),
        source: "http",
        record: ImageRecord {
            image: name,
            sha256: sha,
            width: mask.width as u32,
            height: mask.height as u32,
            model: info.name.clone(),
            model_sha256: info.sha256.clone(),
            runtime: info.runtime.clone(),
            provider: info.provider.to_string(),
            input_size: info.size,
            threshold: info.plan.threshold,
            timings: ImageTimings {
                read: 0.0,
                decode,
                preprocess,
                inference: (t3 - t2).as_secs_f64(),
                postprocess: (t4 - t3).as_secs_f64(),
                write: t4.elapsed().as_secs_f64(),
                latency,
            },
            lesion: Lesion::of(&mask),
            mask: names.mask(),
            overlay: names.overlay(),
            arrived: vmunet_deploy::utc_timestamp(finished - latency),
            finished: vmunet_deploy::utc_timestamp(finished),
            toolkit_version: vmunet_deploy::TOOLKIT_VERSION.into(),
        },
    };
    let mask_png = bytes::Bytes::from(mask_png);
    recent.push(Kept {
        record: record.clone(),
        mask_png: mask_png.clone(),
    });
    Ok(Segmented {
        record,
        mask_png,
        overlay_png,
    })
}
