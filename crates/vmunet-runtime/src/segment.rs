//! [`Segmenter`]: image in, mask out. Decode -> preprocess -> run -> activation -> resize back ->
//! threshold / argmax -> mask and overlay, with per-stage timing; [`OutputNames`] and
//! [`Segmentation::write_images`] are the one way a segmentation becomes files (one naming
//! rule, one PNG encoder, durable writes). `vmunet infer` and the watch-folder service both run
//! images through it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::DynamicImage;
use vmunet_data::{
    activate, check_unique_stems, encode_png, image_files, load_image, mask_from_probabilities,
    output_stem, overlay, preprocess, Array, DataError, Mask, Preprocess,
};

use crate::{Runtime, RuntimeError, Session};

/// Errors of the segmentation pipeline: the image (decode, write) or the model.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Reading the image or writing an output failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model failed on the image.
    #[error("{image}: {source}")]
    Runtime {
        /// The image being segmented.
        image: PathBuf,
        /// Cause.
        source: Box<RuntimeError>,
    },
}

/// How images are turned into masks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterOptions {
    /// Model input size (H = W, a multiple of 32); fixed-size models use their own.
    pub size: Option<usize>,
    /// Foreground threshold on the probability (one-class models).
    pub threshold: f32,
}

impl Default for SegmenterOptions {
    fn default() -> Self {
        Self {
            size: None,
            threshold: 0.5,
        }
    }
}

/// Seconds spent in each stage of one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Preprocessing (min-max rescale, resize to the model size).
    pub preprocess: f64,
    /// The model.
    pub inference: f64,
    /// Activation, resize back, threshold / argmax (and writing, for files).
    pub postprocess: f64,
}

impl Timing {
    /// All stages.
    pub fn total(&self) -> f64 {
        self.preprocess + self.inference + self.postprocess
    }
}

/// One segmented image, at its displayed size.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Class per pixel (binary models: 0 / 1).
    pub mask: Mask,
    /// Stage times (postprocess without writing).
    pub timing: Timing,
}

/// The files one image's results are written to, named from its stem: `STEM_mask.png`,
/// `STEM_overlay.png` and `STEM.json` (the record, where one is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputNames {
    stem: String,
}

impl OutputNames {
    /// The names for an image file (its stem: `photo.jpg` -> `photo`).
    pub fn for_image(path: &Path) -> Self {
        Self::new(output_stem(path))
    }

    /// The names for a given stem.
    pub fn new(stem: impl Into<String>) -> Self {
        Self { stem: stem.into() }
    }

    /// The stem.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// `STEM_mask.png`.
    pub fn mask(&self) -> String {
        format!("{}_mask.png", self.stem)
    }

    /// `STEM_overlay.png`.
    pub fn overlay(&self) -> String {
        format!("{}_overlay.png", self.stem)
    }

    /// `STEM.json`.
    pub fn record(&self) -> String {
        format!("{}.json", self.stem)
    }
}

impl Segmentation {
    /// Encodes the mask (grey PNG: 0/255, or class indices) and the overlay on `img`, and
    /// writes both durably into `dir` under `names` ([`vmunet_fs::write_durable_output`]).
    /// Returns (mask path, overlay path).
    pub fn write_images(
        &self,
        img: &DynamicImage,
        dir: &Path,
        names: &OutputNames,
    ) -> Result<(PathBuf, PathBuf), DataError> {
        let mask_path = dir.join(names.mask());
        let overlay_path = dir.join(names.overlay());
        // The overlay (the larger: a full-size RGB picture) on a second thread, beside the mask.
        let (over, mask) = std::thread::scope(|s| {
            let over = s.spawn(|| -> Result<(), DataError> {
                let png = encode_png(
                    &DynamicImage::ImageRgb8(overlay(img, &self.mask)),
                    &overlay_path,
                )?;
                Ok(vmunet_fs::write_durable_output(&overlay_path, &png)?)
            });
            let mask = encode_png(&DynamicImage::ImageLuma8(self.mask.to_image()), &mask_path)
                .and_then(|png| Ok(vmunet_fs::write_durable_output(&mask_path, &png)?));
            (over.join(), mask)
        });
        mask?;
        over.map_err(|_| DataError::Format {
            path: overlay_path.clone(),
            reason: "the overlay encoder panicked".into(),
        })??;
        Ok((mask_path, overlay_path))
    }
}

/// What [`Segmenter::segment_to`] wrote for one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentedFile {
    /// The input image.
    pub image: PathBuf,
    /// `NAME_mask.png`.
    pub mask: PathBuf,
    /// `NAME_overlay.png`.
    pub overlay: PathBuf,
    /// Displayed width of the image (EXIF orientation applied).
    pub width: u32,
    /// Displayed height.
    pub height: u32,
    /// Stage times (postprocess includes writing both PNGs).
    pub timing: Timing,
    /// Fraction of pixels in the foreground.
    pub foreground: f64,
}

/// The model-independent half of segmentation: how an image becomes the model's input and
/// how the model's logits become a mask at the image's size. [`Segmenter`] runs it around a
/// session; a server that runs the model elsewhere (a batching worker) runs the same two steps
/// on either side of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentPlan {
    /// Model input (channels, height, width).
    pub pre: Preprocess,
    /// Foreground threshold on the probability (one-class models).
    pub threshold: f32,
}

impl SegmentPlan {
    /// The model input for `img`: the official preprocessing (per-image min-max rescale,
    /// resize to the model size) as a `[1, C, H, W]` batch.
    pub fn input(&self, img: &DynamicImage) -> Array {
        let t = preprocess(img, &self.pre);
        Array {
            shape: vec![1, t.channels, t.height, t.width],
            data: t.data,
        }
    }

    /// The mask of sample `index` of a batch of logits `(N, classes, H, W)` at `(height,
    /// width)`: the model's activation, resized, thresholded (one class) or arg-maxed.
    /// `None` when the logits do not have the plan's input size or hold no sample `index`.
    pub fn mask(
        &self,
        logits: &Array,
        index: usize,
        (height, width): (usize, usize),
    ) -> Option<Mask> {
        let [n, classes, h, w] = logits.shape[..] else {
            return None;
        };
        if index >= n || (h, w) != (self.pre.height, self.pre.width) {
            return None;
        }
        let len = classes * h * w;
        let mut probs = logits.data.get(index * len..(index + 1) * len)?.to_vec();
        activate(&mut probs, &[1, classes, h, w]);
        Some(mask_from_probabilities(
            &probs,
            classes,
            (h, w),
            (height, width),
            self.threshold,
        ))
    }
}

/// A session bound to an input size and a threshold.
#[derive(Debug)]
pub struct Segmenter {
    session: Session,
    plan: SegmentPlan,
}

impl Segmenter {
    /// Binds `session` to the input size `options` resolve to, and checks the model takes it
    /// before any image is touched.
    pub fn new(session: Session, options: &SegmenterOptions) -> Result<Self, RuntimeError> {
        let (height, width) = session.input_size(options.size)?;
        let pre = Preprocess {
            height,
            width,
            channels: session.channels(),
        };
        session.check(&[1, pre.channels, height, width])?;
        Ok(Self {
            session,
            plan: SegmentPlan {
                pre,
                threshold: options.threshold,
            },
        })
    }

    /// Runs the model once on a blank input of its size, so that the first image is not
    /// the one that pays for the runtime's first-run setup (plans, buffers: ~0.1 s in tract);
    /// returns the seconds it took. A model that cannot run even that is an error.
    pub fn warm_up(&mut self) -> Result<f64, RuntimeError> {
        let t = Instant::now();
        let pre = self.plan.pre;
        let x = Array {
            shape: vec![1, pre.channels, pre.height, pre.width],
            data: vec![0.0; pre.channels * pre.height * pre.width],
        };
        self.session.run(&x)?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// The session that runs the model.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to run batches the plan prepared ([`SegmentPlan::input`]).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The model input (H, W).
    pub fn input_size(&self) -> (usize, usize) {
        (self.plan.pre.height, self.plan.pre.width)
    }

    /// Preprocessing and postprocessing, without the session.
    pub fn plan(&self) -> SegmentPlan {
        self.plan
    }

    /// Segments a decoded image; the mask has the image's size.
    pub fn segment(&mut self, img: &DynamicImage) -> Result<Segmentation, RuntimeError> {
        let t0 = Instant::now();
        let x = self.plan.input(img);
        let preprocess = t0.elapsed().as_secs_f64();
        self.segment_input(
            &x,
            (img.height() as usize, img.width() as usize),
            preprocess,
        )
    }

    /// Segments a model input made by [`SegmentPlan::input`] (elsewhere: on a thread that
    /// prepares the next image while this one runs); the mask has `size` (height, width),
    /// the image's. `preprocess` is the seconds making `x` took, for the timing.
    pub fn segment_input(
        &mut self,
        x: &Array,
        size: (usize, usize),
        preprocess: f64,
    ) -> Result<Segmentation, RuntimeError> {
        let t1 = Instant::now();
        let y = self.session.run(x)?;
        let t2 = Instant::now();
        let mask = self
            .plan
            .mask(&y, 0, size)
            .ok_or_else(|| RuntimeError::Shape {
                expected: format!(
                    "logits (1, classes, {}, {})",
                    self.plan.pre.height, self.plan.pre.width
                ),
                found: y.shape.clone(),
            })?;
        Ok(Segmentation {
            mask,
            timing: Timing {
                preprocess,
                inference: (t2 - t1).as_secs_f64(),
                postprocess: t2.elapsed().as_secs_f64(),
            },
        })
    }

    /// Segments the decoded `img` read from `path` and writes `NAME_mask.png` and
    /// `NAME_overlay.png` into `out` ([`Segmentation::write_images`]).
    pub fn segment_to(
        &mut self,
        path: &Path,
        img: &DynamicImage,
        out: &Path,
    ) -> Result<SegmentedFile, SegmentError> {
        self.segment_named(path, &OutputNames::for_image(path), img, out)
    }

    /// [`Segmenter::segment_to`] with the output names given: for images that arrive without
    /// a file name of their own (pixels handed over by the Python package's Ray workers);
    /// `image` names the source in errors and in the row.
    pub fn segment_named(
        &mut self,
        image: &Path,
        names: &OutputNames,
        img: &DynamicImage,
        out: &Path,
    ) -> Result<SegmentedFile, SegmentError> {
        let seg = self.segment(img).map_err(|source| SegmentError::Runtime {
            image: image.to_path_buf(),
            source: Box::new(source),
        })?;
        let t = Instant::now();
        let (mask_path, overlay_path) = seg.write_images(img, out, names)?;
        let mut timing = seg.timing;
        timing.postprocess += t.elapsed().as_secs_f64();
        Ok(SegmentedFile {
            image: image.to_path_buf(),
            mask: mask_path,
            overlay: overlay_path,
            width: img.width(),
            height: img.height(),
            timing,
            foreground: seg.mask.foreground_fraction(),
        })
    }

    /// Decodes `path` (EXIF orientation applied, truncated files refused) and segments it
    /// into `out`, as [`Segmenter::segment_to`].
    pub fn segment_file(&mut self, path: &Path, out: &Path) -> Result<SegmentedFile, SegmentError> {
        let img = load_image(path)?;
        self.segment_to(path, &img, out)
    }
}

/// Images to segment, decoded up front so that a bad one stops a run before any output is
/// written.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Each file with its decoded image (EXIF orientation applied).
    pub images: Vec<(PathBuf, DynamicImage)>,
}

impl ImageSet {
    /// Expands `inputs` (files as named, folders to their images) and decodes every image;
    /// two inputs that would write the same output names are refused.
    pub fn load(inputs: &[PathBuf]) -> Result<Self, DataError> {
        let files = image_files(inputs)?;
        check_unique_stems(&files)?;
        let images = files
            .into_iter()
            .map(|p| load_image(&p).map(|img| (p, img)))
            .collect::<Result<_, _>>()?;
        Ok(Self { images })
    }
}

impl Segmenter {
    /// Segments every image of `set` into `out` (created if missing), calling `each` after
    /// each one; returns one row per image.
    pub fn segment_set(
        &mut self,
        set: &ImageSet,
        out: &Path,
        mut each: impl FnMut(&SegmentedFile),
    ) -> Result<Vec<SegmentedFile>, SegmentError> {
        std::fs::create_dir_all(out).map_err(|source| DataError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let mut rows = Vec::with_capacity(set.images.len());
        for (path, img) in &set.images {
            let row = self.segment_to(path, img, out)?;
            each(&row);
            rows.push(row);
        }
        Ok(rows)
    }

    /// What `vmunet infer` does with a set of images: [`Segmenter::segment_set`] into `out`,
    /// then the timing table ([`timing_csv`]) written durably to `csv` (default
    /// `out/timing.csv`). Returns the rows and the table's path.
    pub fn segment_set_to(
        &mut self,
        set: &ImageSet,
        out: &Path,
        csv: Option<&Path>,
        each: impl FnMut(&SegmentedFile),
    ) -> Result<(Vec<SegmentedFile>, PathBuf), SegmentError> {
        let rows = self.segment_set(set, out, each)?;
        let csv = csv.map_or_else(|| out.join("timing.csv"), Path::to_path_buf);
        vmunet_data::write_atomic(&csv, timing_csv(&rows).as_bytes())?;
        Ok((rows, csv))
    }
}

/// The per-image timing table (CSV with a header row).
pub fn timing_csv(rows: &[SegmentedFile]) -> String {
    let mut csv = String::from(
        "image,width,height,preprocess_ms,inference_ms,postprocess_ms,total_ms,foreground_fraction\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{:.6}",
            csv_field(&r.image.display().to_string()),
            r.width,
            r.height,
            r.timing.preprocess * 1e3,
            r.timing.inference * 1e3,
            r.timing.postprocess * 1e3,
            r.timing.total() * 1e3,
            r.foreground
        );
    }
    csv
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionOptions;

    fn segmenter() -> Segmenter {
        let model = vmunet_testdata::golden("tiny-scan.onnx");
        let session = Session::open(&model, &SessionOptions::default()).unwrap();
        Segmenter::new(session, &SegmenterOptions::default()).unwrap()
    }

    #[test]
    fn masks_have_the_image_size_and_files_are_written() {
        let mut s = segmenter();
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(50, 30, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 8) as u8, 90])
        }));
        let seg = s.segment(&img).unwrap();
        assert_eq!((seg.mask.width, seg.mask.height), (50, 30));
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("lesion.png");
        img.save(&src).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let f = s.segment_file(&src, &out).unwrap();
        let mask = image::open(&f.mask).unwrap();
        assert_eq!((mask.width(), mask.height()), (50, 30));
        assert_eq!(image::open(&f.overlay).unwrap().width(), 50);
        // The file path gives the same mask as the decoded image.
        let again = s.segment(&image::open(&src).unwrap()).unwrap();
        assert_eq!(again.mask, seg.mask);
        let csv = timing_csv(&[f]);
        assert_eq!(csv.lines().count(), 2);
        assert!(csv.lines().nth(1).unwrap().contains(",50,30,"), "{csv}");
        // Only the two outputs, no temporary files left behind.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    }

    #[test]
    fn an_unreadable_image_names_the_file_and_writes_nothing() {
        let mut s = segmenter();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = s.segment_file(&bad, dir.path()).unwrap_err();
        assert!(e.to_string().contains("broken.png"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
