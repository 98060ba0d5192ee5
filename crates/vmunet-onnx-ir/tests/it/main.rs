//! Integration tests of vmunet-onnx-ir (the golden files, the graph and the metadata), one test binary: one module per
//! subject.

mod golden;
mod graph;
mod metadata;
