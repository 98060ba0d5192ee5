//! Runtimes for exported VM-UNet models behind one trait: load a model file, run NCHW float32
//! batches, report what ran. tract (pure Rust, any CPU) is built in.
//!
//! A malformed model is an error, never a panic: [`ModelFile::read`] checks the decoded graph
//! ([`validate`]) before a back-end sees it, and a panic inside a back-end (opening, optimising
//! or running) is caught at the session boundary and returned as [`RuntimeError::Panicked`];
//! the session then refuses further runs ([`RuntimeError::Poisoned`]).

#![deny(missing_docs)]

#[cfg(feature = "burn")]
mod burn_rt;
mod custom;
mod describe;
mod forward;
mod guard;
mod model_file;
mod op_time;
#[cfg(feature = "ort")]
pub mod ort_lib;
#[cfg(feature = "ort")]
mod ort_rt;
mod parity;
mod probe;
mod segment;
mod session;
mod tract_rt;
pub mod validate;

#[cfg(feature = "burn")]
pub use burn_rt::BurnRuntime;
pub use custom::uses_custom_scan;
pub use describe::SystemInfo;
pub use forward::{forward_file, read_input};
pub use guard::panic_message;
pub use model_file::{ModelDim, ModelFile, ModelInput};
pub use op_time::{OpProfile, OpTime};
#[cfg(feature = "ort")]
pub use ort_lib::{OrtLibError, OrtLibrary, MIN_ORT_VERSION};
#[cfg(feature = "ort")]
pub use ort_rt::{OrtOptions, OrtRuntime};
pub use parity::{
    check_export, check_parity, image_inputs, random_inputs, Candidate, ParityError, ParityInput,
    ParityJob, ParityReport, RuntimeParity,
};
pub use probe::Probe;
pub use segment::{
    timing_csv, ImageSet, OutputNames, SegmentError, SegmentPlan, Segmentation, SegmentedFile,
    Segmenter, SegmenterOptions, Timing,
};
pub use session::{Session, SessionOptions};
pub use tract_rt::{count_macs, native_half, TractRuntime};
use vmunet_data::Array;
/// The device target (profiles and every decision derived from them), re-exported because
/// sessions are opened for one.
pub use vmunet_target::{self as target, default_input_size, DeviceProfile, RuntimeKind};

/// The instruction set of the scan kernels on this CPU (`avx2+fma`, `avx2+fma+avx512vl`, `neon`
/// or `portable`).
pub fn scan_kernels() -> &'static str {
    vmunet_scan::simd_isa()
}

/// Runtime errors; each names the file or the tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The model file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a usable ONNX model.
    #[error("{path}: not a valid ONNX model ({reason})")]
    NotOnnx {
        /// File.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The input does not fit the model.
    #[error("input shape {found:?} does not fit the model input {expected}")]
    Shape {
        /// The model's declared input.
        expected: String,
        /// What was given.
        found: Vec<usize>,
    },
    /// The file decodes as ONNX but its graph is malformed (see [`validate`]).
    #[error("{path}: malformed ONNX model: {defect}")]
    Malformed {
        /// File.
        path: std::path::PathBuf,
        /// What is wrong.
        defect: validate::ModelDefect,
    },
    /// A back-end panicked; the panic was contained.
    #[error("{runtime} panicked while {stage} {}: {message}", path.display())]
    Panicked {
        /// Runtime name.
        runtime: String,
        /// `loading` or `running`.
        stage: &'static str,
        /// File.
        path: std::path::PathBuf,
        /// The panic's message.
        message: String,
    },
    /// A session whose back-end panicked in an earlier run; it is not run again.
    #[error(
        "{runtime} session for {} is unusable after a panic in an earlier run; open the model again",
        path.display()
    )]
    Poisoned {
        /// Runtime name.
        runtime: String,
        /// File.
        path: std::path::PathBuf,
    },
    /// The back-end failed while preparing or running.
    #[error("{runtime}: {message}")]
    Backend {
        /// Runtime name.
        runtime: String,
        /// Back-end message.
        message: String,
    },
}

/// A loaded model that runs NCHW float32 batches. Runtimes are `Send`: a session opened on one
/// thread runs on another (a server's worker, Python code that releases the GIL).
pub trait Runtime: Send {
    /// Back-end and device that actually run, e.g. `tract (CPU)`.
    fn description(&self) -> String;
    /// The execution provider that runs the model (`CPU`, `CUDA`, `TensorRT`).
    fn provider(&self) -> &'static str {
        "CPU"
    }
    /// Checks that an input of `shape` fits, without running anything.
    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError>;
    /// Runs one batch and returns the model's first output (logits).
    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError>;
    /// Runs `input` once to warm up, then `runs` times, timing every operator: where the
    /// forward's time goes, per operator type. Not every runtime can say.
    fn op_profile(&mut self, input: &Array, runs: usize) -> Result<OpProfile, RuntimeError> {
        let _ = (input, runs);
        Err(RuntimeError::Backend {
            runtime: self.description(),
            message: "this runtime does not time its operators".into(),
        })
    }
}
