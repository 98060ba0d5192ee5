//! Segmenting a source with any runtime: photos through the photo pipeline
//! ([`vmunet_runtime::Segmenter`]); volumes slice by slice, batched, each slice in the
//! canonical orientation ([`crate::Reorient`]) and preprocessed as the model's metadata says
//! (Synapse: HU window [-125, 275] to [0, 1], cubic zoom to the model size, labels zoomed back
//! nearest; ISIC: each slice as a grey photo). Labels come back on the source grid.

use std::time::Instant;

use vmunet_data::{zoom, Array, ZoomOrder};
use vmunet_onnx_ir::Preprocessing;
use vmunet_runtime::{Runtime as _, Segmenter, SegmenterOptions, Session};

use crate::source::{Content, Scan};
use crate::{ClinicalError, Source};

/// The official Synapse input size.
pub const SYNAPSE_SIZE: usize = 224;

/// How sources are segmented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeOptions {
    /// Model input size (H = W) for size-dynamic models (default: 224 for Synapse models, the
    /// official size; for photo models the size they were trained at, else 256).
    pub size: Option<usize>,
    /// Slices per model run.
    pub batch: usize,
    /// Foreground threshold (one-class models).
    pub threshold: f32,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        Self {
            size: None,
            batch: 8,
            threshold: 0.5,
        }
    }
}

/// Seconds per stage of one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct VolumeTiming {
    /// Window, zoom, batching.
    pub preprocess: f64,
    /// The model.
    pub inference: f64,
    /// Argmax / threshold, zoom back, reorientation.
    pub postprocess: f64,
}

/// A session bound to a size and the model's preprocessing, for volumes and photos.
#[derive(Debug)]
pub struct VolumeSegmenter {
    segmenter: Segmenter,
    preprocessing: Preprocessing,
    classes: Vec<String>,
    batch: usize,
    threshold: f32,
}

impl VolumeSegmenter {
    /// Binds `session` to its input size and the preprocessing its metadata records (ISIC
    /// when it records none: files from before the preprocessing was recorded are photo
    /// models).
    pub fn new(session: Session, options: &VolumeOptions) -> Result<Self, ClinicalError> {
        Self::with_model_info(session, options, None)
    }

    /// [`VolumeSegmenter::new`] with the preprocessing and class names given, for a session
    /// whose file does not record them (a checkpoint run in burn: its record says, or the
    /// caller decides); `None` reads them from the model file.
    pub fn with_model_info(
        session: Session,
        options: &VolumeOptions,
        info: Option<(Preprocessing, Vec<String>)>,
    ) -> Result<Self, ClinicalError> {
        let label = session.label().to_string();
        let meta = session
            .file()
            .map(|f| f.metadata.clone())
            .unwrap_or_default();
        let (preprocessing, classes) = match info {
            Some(i) => i,
            None => (meta.preprocessing.unwrap_or_default(), meta.class_names),
        };
        let size = match (options.size, session.fixed_size()) {
            (Some(s), _) => Some(s),
            (None, None) if preprocessing == Preprocessing::Synapse => Some(SYNAPSE_SIZE),
            _ => None,
        };
        let segmenter = Segmenter::new(
            session,
            &SegmenterOptions {
                size,
                threshold: options.threshold,
            },
        )
        .map_err(|e| ClinicalError::Model {
            path: label.clone().into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            segmenter,
            preprocessing,
            classes,
            batch: options.batch.max(1),
            threshold: options.threshold,
        })
    }

    /// The preprocessing applied.
    pub fn preprocessing(&self) -> Preprocessing {
        self.preprocessing
    }

    /// Class names, one per output channel (a one-class model's `foreground` is label 1).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The session.
    pub fn session(&self) -> &Session {
        self.segmenter.session()
    }

    /// The model input (H, W).
    pub fn input_size(&self) -> (usize, usize) {
        self.segmenter.input_size()
    }

    /// Labels of `source` in its own voxel order (class index per voxel; one-class models:
    /// 0 / 1).
    pub fn segment(&mut self, source: &Source) -> Result<(Vec<u8>, VolumeTiming), ClinicalError> {
        let fail = |e: vmunet_runtime::RuntimeError| ClinicalError::Model {
            path: source.path.clone(),
            reason: e.to_string(),
        };
        match &source.content {
            Content::Photo { image, .. } => {
                let s = self.segmenter.segment(image).map_err(fail)?;
                let t = VolumeTiming {
                    preprocess: s.timing.preprocess,
                    inference: s.timing.inference,
                    postprocess: s.timing.postprocess,
                };
                Ok((s.mask.data, t))
            }
            Content::Volume(scan) => match self.preprocessing {
                Preprocessing::Synapse => self.segment_ct(scan).map_err(fail),
                Preprocessing::Isic => self.segment_grey(scan).map_err(fail),
            },
        }
    }

    /// Synapse: every canonical slice windowed, zoomed, batched through the model.
    fn segment_ct(
        &mut self,
        scan: &Scan,
    ) -> Result<(Vec<u8>, VolumeTiming), vmunet_runtime::RuntimeError> {
        let mut timing = VolumeTiming::default();
        let t = Instant::now();
        let reorient = scan.geometry.canonical();
        let canon = reorient.to_canonical(&scan.voxels);
        let [w, h, depth] = reorient.dims();
        let (size, _) = self.segmenter.input_size();
        let channels = self.segmenter.session().channels();
        let plane = w * h;
        timing.preprocess += t.elapsed().as_secs_f64();
        let mut labels = Vec::with_capacity(canon.len());
        let (lo, hi) = (Preprocessing::HU_MIN, Preprocessing::HU_MAX);
        for start in (0..depth).step_by(self.batch) {
            let end = (start + self.batch).min(depth);
            let t = Instant::now();
            let mut input = Vec::with_capacity((end - start) * channels * size * size);
            for k in start..end {
                let slice: Vec<f32> = canon[k * plane..(k + 1) * plane]
                    .iter()
                    .map(|&v| (v.clamp(lo, hi) - lo) / (hi - lo))
                    .collect();
                let z = zoom(&slice, h, w, size, size, ZoomOrder::Cubic);
                for _ in 0..channels {
                    input.extend_from_slice(&z);
                }
            }
            let x = Array {
                shape: vec![end - start, channels, size, size],
                data: input,
            };
            timing.preprocess += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let y = self.segmenter.session_mut().run(&x)?;
            timing.inference += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let classes = y.shape.get(1).copied().unwrap_or(1);
            let per = classes * size * size;
            for b in 0..end - start {
                let logits = &y.data[b * per..(b + 1) * per];
                let pred: Vec<f32> = (0..size * size)
                    .map(|p| {
                        if classes == 1 {
                            // sigmoid(x) > t  <=>  x > logit(t)
                            let t = self.threshold.clamp(1e-6, 1.0 - 1e-6);
                            f32::from(logits[p] > (t / (1.0 - t)).ln())
                        } else {
                            let mut best = 0;
                            for c in 1..classes {
                                if logits[c * size * size + p] > logits[best * size * size + p] {
                                    best = c;
                                }
                            }
                            best as f32
                        }
                    })
                    .collect();
                let back = zoom(&pred, size, size, h, w, ZoomOrder::Nearest);
                labels.extend(back.into_iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
            }
            timing.postprocess += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        let out = reorient.to_source(&labels);
        timing.postprocess += t.elapsed().as_secs_f64();
        Ok((out, timing))
    }

    /// ISIC on a grey volume: each canonical slice as a grey photo (min-max to [0, 255]).
    fn segment_grey(
        &mut self,
        scan: &Scan,
    ) -> Result<(Vec<u8>, VolumeTiming), vmunet_runtime::RuntimeError> {
        let mut timing = VolumeTiming::default();
        let reorient = scan.geometry.canonical();
        let canon = reorient.to_canonical(&scan.voxels);
        let [w, h, depth] = reorient.dims();
        let plane = w * h;
        let mut labels = Vec::with_capacity(canon.len());
        for k in 0..depth {
            let slice = &canon[k * plane..(k + 1) * plane];
            let (mn, mx) = slice
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let scale = if mx > mn { 255.0 / (mx - mn) } else { 0.0 };
            let bytes: Vec<u8> = slice
                .iter()
                .map(|&v| ((v - mn) * scale).round() as u8)
                .collect();
            let img = image::GrayImage::from_raw(w as u32, h as u32, bytes)
                .map(image::DynamicImage::ImageLuma8)
                .unwrap_or_else(|| unreachable!("the slice buffer has the slice's size"));
            let s = self.segmenter.segment(&img)?;
            timing.preprocess += s.timing.preprocess;
            timing.inference += s.timing.inference;
            timing.postprocess += s.timing.postprocess;
            labels.extend(s.mask.data);
        }
        Ok((reorient.to_source(&labels), timing))
    }
}
