//! End-to-end: the `vmunet` binary driven as a user drives it, one module per command.

mod bench;
mod bundle;
mod clinical;
mod common;
mod compress;
mod dicom_node;
mod eval;
mod export;
mod forward;
mod help;
mod infer;
mod info;
mod init;
mod mutation;
mod ort_ops;
mod parity;
mod profile;
mod serve;
mod serve_http;
mod train;
