//! `vmunet._vmunet`: the extension module under the `vmunet` Python package
//! (`python/vmunet/`). It exposes the libraries' own types and workflows (a session, the
//! segmenter, export, compression, parity, evaluation); the package around it turns numpy
//! arrays into the raw views these take, reports into dataclasses and errors into its
//! exception classes. Nothing here decides anything a library does not: the command line and
//! this module call the same functions.
//!
//! Every call that runs a model, reads images or writes files releases the GIL.

#![deny(missing_docs)]

mod error;
mod pixels;
mod segment;
mod session;
mod workflows;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _vmunet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SCAN_KERNELS", vmunet_runtime::scan_kernels())?;
    m.add_class::<session::PySession>()?;
    m.add_class::<segment::PySegmenter>()?;
    m.add_function(wrap_pyfunction!(workflows::export, m)?)?;
    m.add_function(wrap_pyfunction!(workflows::fp16, m)?)?;
    m.add_function(wrap_pyfunction!(workflows::int8, m)?)?;
    m.add_function(wrap_pyfunction!(workflows::parity, m)?)?;
    m.add_function(wrap_pyfunction!(workflows::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(workflows::model_info, m)?)?;
    m.add_function(wrap_pyfunction!(session::ort_library, m)?)?;
    Ok(())
}
