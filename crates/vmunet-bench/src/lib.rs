//! Benchmarks of VM-UNet, as library functions returning typed reports (`vmunet bench` prints
//! them; so can any other front end).
//!
//! - [`bench_model`]: an exported model in its runtime (or as a device profile runs it):
//!   latency, throughput and peak memory, and with a profile, [`DeviceReport`] (the provider
//!   that ran against the ones asked for, precision, memory against the budget).
//! - `bench_loaded` (feature `burn`): a checkpoint or preset in burn, and each scan form of its
//!   export in tract and ONNX Runtime, in one run.
//! - [`BenchOptions::kernel`]: the scan kernel alone at the model's stage shapes against its
//!   arithmetic bound ([`KernelReport`]); [`BenchOptions::by_op`]: time per operator type;
//!   [`BenchOptions::peer`]: ratios against the official PyTorch model timed in the same run
//!   ([`Peer`], `tests/bench_peer.py`). No ratio is ever computed against a number the run did
//!   not measure.

#![deny(missing_docs)]

#[cfg(feature = "burn")]
mod checkpoint;
mod device;
mod kernel;
mod peer;
mod report;
mod timing;

use std::path::Path;

#[cfg(feature = "burn")]
pub use checkpoint::bench_loaded;
pub use device::DeviceReport;
pub use kernel::{KernelReport, KernelShape, KernelStage};
pub use peer::Peer;
pub use report::BenchReport;
pub use timing::Row;

use vmunet_runtime::{Runtime, RuntimeError, Session, SessionOptions};

/// Benchmark errors.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Opening or running a model failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Exporting the checkpoint failed.
    #[cfg(feature = "burn")]
    #[error(transparent)]
    Export(#[from] vmunet_onnx::ExportError),
    /// The checkpoint or preset cannot be loaded, or does not take the input.
    #[cfg(feature = "burn")]
    #[error(transparent)]
    Model(#[from] vmunet_model::ModelError),
    /// A file cannot be read or written.
    #[error(transparent)]
    Fs(#[from] vmunet_fs::FsError),
    /// The peer timings file is unusable.
    #[error("{path}: {reason}")]
    Peer {
        /// File.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The kernel report cannot be made (no configuration, thread pool).
    #[error("{0}")]
    Kernel(String),
}

/// How to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Input size (H = W; default: the profile's, else the model's, else 256).
    pub size: Option<usize>,
    /// Batch size (default: the profile's, else 1).
    pub batch: Option<usize>,
    /// Timed runs.
    pub runs: usize,
    /// Untimed warm-up runs.
    pub warmup: usize,
    /// CPU threads (runtimes and kernels); None: all cores for ONNX Runtime and the kernels,
    /// one for tract.
    pub threads: Option<usize>,
    /// Also time the scan kernel alone at the model's stage shapes.
    pub kernel: bool,
    /// Also time every node and report where the forward goes, per operator type.
    pub by_op: bool,
    /// The official model's timings from the same run: adds "vs PyTorch" ratios.
    pub peer: Option<Peer>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            size: None,
            batch: None,
            runs: 5,
            warmup: 1,
            threads: None,
            kernel: false,
            by_op: false,
            peer: None,
        }
    }
}

impl BenchOptions {
    /// The threads the kernels and ONNX Runtime use: as asked, else every core.
    pub fn threads_or_all(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Sizes the process's rayon pool (vmunet's kernels) to `threads`; call once, before
/// benchmarking.
pub fn use_threads(threads: usize) -> Result<(), BenchError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| BenchError::Kernel(format!("configuring the thread pool: {e}")))
}

/// Benchmarks the exported model at `path`, opened as `session` says (runtime, device
/// profile, threads). `progress` receives a line per timed configuration.
pub fn bench_model(
    path: &Path,
    session: &SessionOptions,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(String),
) -> Result<BenchReport, BenchError> {
    let threads = opts.threads_or_all();
    let mut s = Session::open(path, session)?;
    let (h, w) = s.input_size(opts.size)?;
    let batch = opts.batch.or(s.profile().map(|p| p.batch)).unwrap_or(1);
    let x = timing::input(&[batch, s.channels(), h, w]);
    let scan = scan_form_label(&s).unwrap_or_else(|| "?".into());
    let kernel = if opts.kernel {
        Some(kernel::for_model_file(&s, h, opts.runs, threads)?)
    } else {
        None
    };
    let row = timing::time(&mut s, &x, &scan, opts, progress)?;
    let mut by_op = Vec::new();
    if opts.by_op {
        timing::profile_ops(path, &x, &scan, opts, &mut by_op, progress)?;
    }
    let device = s.profile().map(|p| DeviceReport::new(p, &s, &row, batch));
    let mut report = BenchReport::new(
        format!("{}, input {:?}", s.label(), x.shape),
        x.shape.clone(),
        threads,
        opts.peer.clone(),
    );
    report.rows.push(row);
    report.batch = device.as_ref().map_or(batch, |d| d.batch);
    report.device = device;
    report.kernel = kernel;
    report.by_op = by_op;
    Ok(report)
}

/// The scan formulation recorded in an export (`scan`, `chunked (64)`, `custom`).
pub fn scan_form_label(session: &Session) -> Option<String> {
    let metadata = &session.file()?.metadata;
    let form = metadata.scan?;
    Some(match metadata.chunk {
        Some(c) => format!("{form} ({c})"),
        None => form.to_string(),
    })
}

/// Times `runtime` on `input` as `opts` say (warm-up, then timed runs): the row of a table.
pub fn time_runtime(
    runtime: &mut dyn Runtime,
    input: &vmunet_data::Array,
    scan: &str,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(String),
) -> Result<Row, BenchError> {
    timing::time(runtime, input, scan, opts, progress)
}
