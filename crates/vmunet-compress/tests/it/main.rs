//! Integration tests of vmunet-compress (graph rewrites and the pinned outputs of the rewriters), one test binary: one module per
//! subject.

mod graph;
mod pinned;
