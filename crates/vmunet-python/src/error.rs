//! Library errors as the exceptions of `vmunet.errors` (defined in Python, so that they can
//! also be `FileNotFoundError`s or `ValueError`s). The message is the library's, with every
//! cause the message does not already contain, as the command line prints it.

use std::error::Error as StdError;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Which exception of `vmunet.errors` an error becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `VmunetError`: any other failure of a workflow.
    General,
    /// `ModelError`: a model that cannot be opened or run.
    Model,
    /// `ModelNotFoundError`: a model file that does not exist.
    ModelNotFound,
    /// `ImageError`: an image that cannot be read or decoded.
    Image,
    /// `InputError`: an input that does not fit the model or the call.
    Input,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::General => "VmunetError",
            Kind::Model => "ModelError",
            Kind::ModelNotFound => "ModelNotFoundError",
            Kind::Image => "ImageError",
            Kind::Input => "InputError",
        }
    }
}

/// The message of `err` followed by each cause it does not already quote.
pub fn message(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
        source = cause.source();
    }
    text
}

/// A Python exception of class `kind` carrying `text`.
pub fn raise(kind: Kind, text: String) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("vmunet.errors")
            .and_then(|m| m.getattr(kind.class_name()))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, text),
            // The package is not importable (the module loaded on its own): still an error.
            Err(_) => PyRuntimeError::new_err(text),
        }
    })
}

/// `err` as an exception of class `kind`.
pub fn to_py(kind: Kind, err: &(dyn StdError + 'static)) -> PyErr {
    raise(kind, message(err))
}

/// Whether a file that does not exist is the root of `err`.
fn not_found(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A model (file or checkpoint) that cannot be opened: `ModelNotFoundError` when it does not
/// exist, else `ModelError`.
pub fn model(err: &(dyn StdError + 'static)) -> PyErr {
    let kind = if not_found(err) {
        Kind::ModelNotFound
    } else {
        Kind::Model
    };
    to_py(kind, err)
}

/// The class a runtime error belongs to.
pub fn runtime_kind(err: &vmunet_runtime::RuntimeError) -> Kind {
    use vmunet_runtime::RuntimeError as E;
    match err {
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Kind::ModelNotFound
        }
        E::Shape { .. } => Kind::Input,
        _ => Kind::Model,
    }
}

/// A runtime error as its exception.
pub fn runtime(err: vmunet_runtime::RuntimeError) -> PyErr {
    to_py(runtime_kind(&err), &err)
}

/// An image (decoding, reading, writing) error as `ImageError`.
pub fn data(err: vmunet_data::DataError) -> PyErr {
    to_py(Kind::Image, &err)
}

/// A segmentation error: the image's, or the model's.
pub fn segment(err: vmunet_runtime::SegmentError) -> PyErr {
    match &err {
        vmunet_runtime::SegmentError::Data(_) => to_py(Kind::Image, &err),
        vmunet_runtime::SegmentError::Runtime { source, .. } => to_py(runtime_kind(source), &err),
    }
}

/// Any other library error as `VmunetError`.
pub fn general(err: impl StdError + 'static) -> PyErr {
    to_py(Kind::General, &err)
}

/// A bad argument value (an unknown runtime name, a negative size) as `InputError`.
pub fn input(text: impl Into<String>) -> PyErr {
    raise(Kind::Input, text.into())
}
