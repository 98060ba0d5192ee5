//! `vmunet.Session`: an ONNX model opened in tract or ONNX Runtime ([`vmunet_runtime::Session`]),
//! run on NCHW float32 / float16 arrays.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use vmunet_runtime::{Runtime as _, RuntimeKind, Session, SessionOptions};

use crate::error;
use crate::pixels::{read_f32, Elem};

/// How a model is opened, as the Python constructors give it.
pub struct OpenArgs {
    /// `tract` or `ort` (default tract; a profile chooses its own).
    pub runtime: Option<String>,
    /// A device profile (`devices/*.toml`).
    pub profile: Option<PathBuf>,
    /// Threads for the runtime's pool.
    pub threads: Option<usize>,
    /// The ONNX Runtime library to load.
    pub ort_library: Option<PathBuf>,
}

impl OpenArgs {
    /// The library's session options.
    pub fn options(&self) -> PyResult<SessionOptions> {
        let runtime = match self.runtime.as_deref() {
            None => None,
            Some(name) => match name.parse::<RuntimeKind>() {
                Ok(kind) => Some(kind),
                Err(e) => return Err(error::input(format!("runtime={name:?}: {e}"))),
            },
        };
        if self.profile.is_some() && runtime.is_some() {
            return Err(error::input(
                "give runtime= or profile=, not both: a device profile chooses its runtime",
            ));
        }
        let profile = match &self.profile {
            Some(p) => Some(vmunet_runtime::DeviceProfile::load(p).map_err(error::general)?),
            None => None,
        };
        Ok(SessionOptions {
            runtime,
            profile,
            threads: self.threads,
            ort_library: self.ort_library.clone(),
            ..Default::default()
        })
    }
}

/// Opens `path` as `args` say, with the GIL released: an ONNX file in tract or ONNX Runtime,
/// or, with `runtime="burn"`, a checkpoint (`.bpk`, official `.pth`, `.safetensors`).
pub fn open(py: Python<'_>, path: PathBuf, args: &OpenArgs) -> PyResult<Session> {
    if args.runtime.as_deref() == Some("burn") {
        if args.profile.is_some() {
            return Err(error::input(
                "profile= runs an exported ONNX file; runtime=\"burn\" runs a checkpoint",
            ));
        }
        return py
            .detach(move || vmunet_model::ModelSource::Checkpoint(path).load())
            .map(vmunet_runtime::BurnRuntime::session)
            .map_err(|e| error::model(&e));
    }
    let options = args.options()?;
    py.detach(move || Session::open(&path, &options))
        .map_err(error::runtime)
}

/// The model's metadata and how it runs, as JSON text (the package parses it once).
pub fn describe(session: &Session) -> String {
    let mut v = match session.file() {
        Some(f) => f.metadata_json(),
        None => serde_json::json!({}),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("runtime".into(), session.description().into());
        o.insert("provider".into(), session.provider().into());
        o.insert("channels".into(), session.channels().into());
        o.insert(
            "fixed_size".into(),
            match session.fixed_size() {
                Some((h, w)) => serde_json::json!([h, w]),
                None => serde_json::Value::Null,
            },
        );
    }
    v.to_string()
}

/// An opened model (the package's `vmunet.Session` wraps it).
#[pyclass(module = "vmunet._vmunet", name = "_Session")]
pub struct PySession {
    inner: Mutex<Session>,
    info: String,
}

#[pymethods]
impl PySession {
    /// Opens the ONNX file at `path`.
    #[new]
    #[pyo3(signature = (path, runtime=None, profile=None, threads=None, ort_library=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        runtime: Option<String>,
        profile: Option<PathBuf>,
        threads: Option<usize>,
        ort_library: Option<PathBuf>,
    ) -> PyResult<Self> {
        let args = OpenArgs {
            runtime,
            profile,
            threads,
            ort_library,
        };
        let session = open(py, path, &args)?;
        Ok(Self {
            info: describe(&session),
            inner: Mutex::new(session),
        })
    }

    /// The model's metadata and runtime as JSON text.
    #[getter]
    fn info(&self) -> &str {
        &self.info
    }

    /// Runs the NCHW array at `address` (C-contiguous, `shape`, `dtype` `float32` or
    /// `float16`; the caller keeps it alive for the call) and returns the logits as a
    /// bytearray of the same element type, with their shape.
    fn run<'py>(
        &self,
        py: Python<'py>,
        address: usize,
        shape: Vec<usize>,
        dtype: &str,
    ) -> PyResult<(Bound<'py, PyByteArray>, Vec<usize>)> {
        let elem = Elem::parse(dtype)?;
        if shape.len() != 4 {
            return Err(error::input(format!(
                "expected an NCHW array (4 dimensions), got shape {shape:?}"
            )));
        }
        // One copy, into the runtime's input, while the GIL keeps the array alive.
        let input = vmunet_data::Array {
            data: read_f32(address, &shape, elem)?,
            shape,
        };
        let out = py.detach(|| {
            let mut session = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            session.run(&input)
        });
        let out = out.map_err(error::runtime)?;
        let bytes = match elem {
            Elem::F32 => PyByteArray::new_with(py, out.data.len() * 4, |buf| {
                for (dst, v) in buf.chunks_exact_mut(4).zip(&out.data) {
                    dst.copy_from_slice(&v.to_ne_bytes());
                }
                Ok(())
            })?,
            Elem::F16 => PyByteArray::new_with(py, out.data.len() * 2, |buf| {
                for (dst, v) in buf.chunks_exact_mut(2).zip(&out.data) {
                    dst.copy_from_slice(&half::f16::from_f32(*v).to_bits().to_ne_bytes());
                }
                Ok(())
            })?,
        };
        Ok((bytes, out.shape))
    }
}

/// The ONNX Runtime library the search finds (`explicit` first, then `ORT_DYLIB_PATH`, ...),
/// as (path, version, how it was found).
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub fn ort_library(explicit: Option<PathBuf>) -> PyResult<(String, String, String)> {
    let lib = vmunet_runtime::ort_lib::locate(explicit.as_deref()).map_err(error::general)?;
    Ok((
        lib.path.display().to_string(),
        lib.version,
        lib.source.describe().to_string(),
    ))
}
