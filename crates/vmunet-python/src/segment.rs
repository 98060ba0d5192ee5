//! `vmunet.Segmenter`: image in, mask out ([`vmunet_runtime::Segmenter`], the pipeline `vmunet
//! infer` and the servers run), from a path, encoded bytes or a decoded pixel array.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::DynamicImage;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
use vmunet_runtime::{ImageSet, Runtime as _, Segmentation, Segmenter, SegmenterOptions, Session};

use crate::error;
use crate::session::{describe, open, OpenArgs};

/// A model bound to its input size and threshold (the package's `vmunet.Segmenter`).
#[pyclass(module = "vmunet._vmunet", name = "_Segmenter")]
pub struct PySegmenter {
    inner: Mutex<Segmenter>,
    info: String,
    classes: Vec<String>,
}

/// The mask's bytes (class index per pixel, row-major), its height and width, and the record
/// as JSON text.
type Output<'py> = (Bound<'py, PyByteArray>, usize, usize, String);

impl PySegmenter {
    /// Segments `img` with the GIL released; `source` names it in the record.
    fn run<'py>(
        &self,
        py: Python<'py>,
        img: DynamicImage,
        source: Option<&Path>,
    ) -> PyResult<Output<'py>> {
        let result = py.detach(|| {
            let mut seg = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let input = seg.input_size();
            seg.segment(&img).map(|s| (s, input))
        });
        let (seg, input): (Segmentation, (usize, usize)) = result.map_err(|e| match source {
            Some(p) => error::segment(vmunet_runtime::SegmentError::Runtime {
                image: p.to_path_buf(),
                source: Box::new(e),
            }),
            None => error::runtime(e),
        })?;
        let record = serde_json::json!({
            "source": source.map(|p| p.display().to_string()),
            "width": seg.mask.width,
            "height": seg.mask.height,
            "classes": self.classes,
            "input_size": [input.0, input.1],
            "foreground": seg.mask.foreground_fraction(),
            "timing": seg.timing,
            "total_seconds": seg.timing.total(),
        });
        let (h, w) = (seg.mask.height, seg.mask.width);
        let mask = PyByteArray::new(py, &seg.mask.data);
        Ok((mask, h, w, record.to_string()))
    }
}

#[pymethods]
impl PySegmenter {
    /// Opens `path` (an ONNX file; a checkpoint with `runtime="burn"`; `None`: the reference
    /// model built into the package) and binds it to `size` and `threshold`.
    #[new]
    #[pyo3(signature = (path=None, runtime=None, profile=None, threads=None, ort_library=None, size=None, threshold=0.5))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        runtime: Option<String>,
        profile: Option<PathBuf>,
        threads: Option<usize>,
        ort_library: Option<PathBuf>,
        size: Option<usize>,
        threshold: f32,
    ) -> PyResult<Self> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(error::input(format!(
                "threshold={threshold} is not a probability in [0, 1]"
            )));
        }
        let path = match path {
            Some(p) => p,
            None => vmunet_embedded::REFERENCE
                .materialize()
                .map_err(error::general)?,
        };
        let args = OpenArgs {
            runtime,
            profile,
            threads,
            ort_library,
        };
        let session: Session = open(py, path, &args)?;
        let info = describe(&session);
        let classes = session
            .file()
            .map(|f| f.metadata.class_names.clone())
            .unwrap_or_default();
        let options = SegmenterOptions { size, threshold };
        let segmenter = Segmenter::new(session, &options).map_err(error::runtime)?;
        Ok(Self {
            inner: Mutex::new(segmenter),
            info,
            classes,
        })
    }

    /// The model's metadata and runtime as JSON text, with the input size it runs at.
    #[getter]
    fn info(&self) -> PyResult<String> {
        let seg = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: serde_json::Value = serde_json::from_str(&self.info).map_err(error::general)?;
        if let Some(o) = v.as_object_mut() {
            let (h, w) = seg.input_size();
            o.insert("run_size".into(), serde_json::json!([h, w]));
            o.insert("description".into(), seg.session().description().into());
        }
        Ok(v.to_string())
    }

    /// Decodes the image file at `path` (EXIF orientation applied) and segments it.
    fn segment_path<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Output<'py>> {
        let img = py
            .detach(|| vmunet_data::load_image(&path))
            .map_err(error::data)?;
        self.run(py, img, Some(&path))
    }

    /// Decodes encoded image bytes (JPEG, PNG, TIFF, WebP, ...) and segments them; `name`
    /// names them in errors.
    fn segment_bytes<'py>(
        &self,
        py: Python<'py>,
        data: Bound<'py, PyBytes>,
        name: String,
    ) -> PyResult<Output<'py>> {
        let path = PathBuf::from(name);
        let bytes = data.as_bytes();
        let img = py
            .detach(|| vmunet_data::decode_image(&path, bytes))
            .map_err(error::data)?;
        self.run(py, img, None)
    }

    /// Segments the C-contiguous uint8 pixel array at `address` (height x width x channels,
    /// or height x width), as PIL and imageio give it.
    fn segment_pixels<'py>(
        &self,
        py: Python<'py>,
        address: usize,
        shape: Vec<usize>,
    ) -> PyResult<Output<'py>> {
        let img = crate::pixels::read_image(address, &shape)?;
        self.run(py, img, None)
    }

    /// Segments the pixel array at `address` (as [`PySegmenter::segment_pixels`]) and writes
    /// `STEM_mask.png` and `STEM_overlay.png` into `out`, as `vmunet infer` writes them.
    /// Returns the row `segment_many` gives for a file, as JSON text.
    fn segment_pixels_to(
        &self,
        py: Python<'_>,
        address: usize,
        shape: Vec<usize>,
        out: PathBuf,
        stem: String,
    ) -> PyResult<String> {
        let img = crate::pixels::read_image(address, &shape)?;
        let row = py.detach(|| {
            std::fs::create_dir_all(&out).map_err(|source| {
                error::data(vmunet_data::DataError::Io {
                    path: out.clone(),
                    source,
                })
            })?;
            let mut seg = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let names = vmunet_runtime::OutputNames::new(stem.clone());
            seg.segment_named(Path::new(&stem), &names, &img, &out)
                .map_err(error::segment)
        })?;
        serde_json::to_string(&row).map_err(error::general)
    }

    /// `vmunet infer` on files and folders: every image decoded first (a bad one stops the
    /// run before anything is written), then `NAME_mask.png`, `NAME_overlay.png` and
    /// `timing.csv` (or `csv`) in `out`. Returns the rows as JSON text.
    #[pyo3(signature = (inputs, out, csv=None))]
    fn segment_many(
        &self,
        py: Python<'_>,
        inputs: Vec<PathBuf>,
        out: PathBuf,
        csv: Option<PathBuf>,
    ) -> PyResult<String> {
        let result = py.detach(|| {
            let set = ImageSet::load(&inputs).map_err(error::data)?;
            let mut seg = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            seg.segment_set_to(&set, &out, csv.as_deref(), |_| {})
                .map_err(error::segment)
        });
        let (rows, csv) = result?;
        Ok(serde_json::json!({ "rows": rows, "csv": csv }).to_string())
    }
}
