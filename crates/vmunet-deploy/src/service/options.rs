//! What the service is asked to do ([`ServeOptions`]) and what a run did ([`ServeSummary`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vmunet_runtime::SessionOptions;

use super::log::Log;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Folder watched for images (not recursive).
    pub watch: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// The ONNX model.
    pub model: PathBuf,
    /// Runtime, profile, threads.
    pub session: SessionOptions,
    /// Model input size (default: the model's / profile's).
    pub size: Option<usize>,
    /// Foreground threshold.
    pub threshold: f32,
    /// How long a file's size and time must hold when no close event is seen.
    pub settle: Duration,
    /// How often the folder is listed when nothing happens.
    pub poll_interval: Duration,
    /// Poll instead of using file-system events.
    pub poll: bool,
    /// Exit once the folder is drained (batch mode), instead of watching on.
    pub once: bool,
    /// Serve `/health/live`, `/health/ready`, `/status` here.
    pub health: Option<SocketAddr>,
    /// Log format.
    pub log: Log,
}

/// What a service run did.
#[derive(Debug, Clone, Default)]
pub struct ServeSummary {
    /// Images segmented in this run.
    pub done: usize,
    /// Images set aside in this run.
    pub failed: usize,
    /// Images found already processed.
    pub skipped: usize,
    /// Images a crash interrupted that were found complete at start.
    pub recovered: usize,
    /// `inotify` or `polling`.
    pub watcher: &'static str,
    /// Arrival-to-mask seconds of each image done in this run.
    pub latencies: Vec<f64>,
    /// Model seconds of each image done in this run.
    pub inference: Vec<f64>,
    /// Wall seconds from the first arrival to the last mask.
    pub busy_seconds: f64,
}
