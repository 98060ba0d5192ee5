//! Integration tests of vmunet-onnx (the golden exports and parity of every scan form with the official logits), one test binary: one module per
//! subject.

mod export_parity;
mod golden;
