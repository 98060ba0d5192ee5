//! Test-only: one place that knows where test inputs live.
//!
//! - `../shared` beside the checkout (or `VMUNET_SHARED`): the official PyTorch fixtures and
//!   the real ISIC 2017 data. Absent on some machines: [`shared`] returns `None` after printing
//!   a `SKIP:` line, and the test returns early.
//! - `onnx/golden` in the repository: tiny golden models, always present.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The repository root (the workspace folder): the nearest folder holding `onnx/golden` above
/// the running test's package (Cargo sets `CARGO_MANIFEST_DIR` for test processes), else above
/// where this crate was compiled. The run-time lookup comes first because Cargo does not rebuild
/// a path dependency when the checkout moves, so a compile-time path can be stale.
pub fn repo_root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"));
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let found = running
        .iter()
        .map(PathBuf::as_path)
        .chain([compiled])
        .flat_map(Path::ancestors)
        .find(|d| d.join("onnx/golden").is_dir())
        .map(Path::to_path_buf);
    found.unwrap_or_else(|| compiled.join("../.."))
}

/// A file in `onnx/golden` (tiny golden models, their input and logits).
pub fn golden(name: &str) -> PathBuf {
    repo_root().join("onnx/golden").join(name)
}

/// The shared folder (`VMUNET_SHARED`, else `../shared` beside the checkout) when it holds
/// `rel`; otherwise prints `SKIP: <why> (<test>)` and returns `None`.
pub fn shared_with(rel: &str, test: &str) -> Option<PathBuf> {
    let root = std::env::var_os("VMUNET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    if root.join(rel).exists() {
        Some(root)
    } else {
        eprintln!(
            "SKIP: {test}: {} not found under {} (set VMUNET_SHARED)",
            rel,
            root.display()
        );
        None
    }
}

/// The shared folder when it has the official-small fixtures (see [`shared_with`]).
pub fn shared(test: &str) -> Option<PathBuf> {
    shared_with("fixtures/official-small/small_strong_model.pth", test)
}

/// `shared/fixtures/official-small` when present (see [`shared_with`]).
pub fn official_small(test: &str) -> Option<PathBuf> {
    shared(test).map(|r| r.join("fixtures/official-small"))
}

/// `shared/data/<name>` (e.g. `isic2017`) when present (see [`shared_with`]).
pub fn shared_data(name: &str, test: &str) -> Option<PathBuf> {
    shared_with(&format!("data/{name}"), test).map(|r| r.join("data").join(name))
}
