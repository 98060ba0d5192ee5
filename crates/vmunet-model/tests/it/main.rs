//! Integration tests of vmunet-model (checkpoints in every format and parity with the official PyTorch model), one test binary: one module per
//! subject.

mod checkpoints;
mod common;
mod official_parity;
