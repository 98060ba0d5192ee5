//! Test-only: the golden ONNX exports turned into burn code by burn-import at build time.
//!
//! burn-import (0.21, which delegates to burn-onnx) reads an ONNX graph and writes a burn
//! module for it. Running that module on the golden input and comparing with the golden logits
//! checks the exporter through a path that shares nothing with tract or ONNX Runtime: burn-onnx's
//! reading of the ONNX operators, burn's kernels. `tests/golden.rs` does it for every form that
//! imports; [`REFUSED`] lists the others with burn-import's reason.
#![deny(missing_docs)]

// The generated code names `alloc::vec::Vec`.
extern crate alloc;

/// The `chunked` golden export (standard operators, no control flow), as burn code.
#[cfg(burn_import_chunked)]
#[allow(missing_docs, unused, clippy::all)]
pub mod chunked {
    include!(concat!(env!("OUT_DIR"), "/chunked/tiny-chunked.rs"));
}

/// The `scan` golden export (ONNX `Scan` over the sequence), as burn code.
#[cfg(burn_import_scan)]
#[allow(missing_docs, unused, clippy::all)]
pub mod scan {
    include!(concat!(env!("OUT_DIR"), "/scan/tiny-scan.rs"));
}

/// The golden forms burn-import could not read, with its reason (`(form, reason)`).
pub const REFUSED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/refused.rs"));
