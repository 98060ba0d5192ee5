//! `vmunet serve --watch IN --out OUT`: the watch-folder service (`vmunet_deploy::service`).
//! This file parses, installs the signal handlers and prints the summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use vmunet_deploy::service::log::{Log, LogFormat};
use vmunet_deploy::service::stop_on_signals;
use vmunet_deploy::{serve, ServeOptions};
use vmunet_runtime::{RuntimeKind, SessionOptions};

/// Arguments of `vmunet serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder to watch for images (not recursive; `*.part` and hidden files are ignored until
    /// renamed).
    #[arg(long, value_name = "DIR")]
    watch: PathBuf,
    /// Output folder: NAME_mask.png, NAME_overlay.png, NAME.json, failed/, status.json,
    /// audit.jsonl.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Exported ONNX model.
    #[arg(long, value_name = "model.onnx")]
    model: PathBuf,
    /// Device profile (runtime, providers, threads, input size).
    #[arg(long, value_name = "PROFILE.toml", conflicts_with = "runtime")]
    profile: Option<PathBuf>,
    /// Runtime without a profile: tract (default) or ort.
    #[arg(long)]
    runtime: Option<RuntimeKind>,
    /// CPU threads (without a profile).
    #[arg(long)]
    threads: Option<usize>,
    /// Model input size (H = W, a multiple of 32); fixed-size models use their own.
    #[arg(long)]
    size: Option<usize>,
    /// Foreground threshold on the probability.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Milliseconds a file's size and time must hold before it is read (when no close event
    /// says it is complete).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Milliseconds between listings of the folder when nothing happens.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Poll the folder instead of using file-system events (network file systems).
    #[arg(long)]
    poll: bool,
    /// Process what is in the folder (and what arrives meanwhile), then exit.
    #[arg(long)]
    once: bool,
    /// Serve /health/live, /health/ready and /status over HTTP on this address (e.g.
    /// 127.0.0.1:8089).
    #[arg(long, value_name = "ADDR")]
    health: Option<SocketAddr>,
    /// Log lines on standard error: text or json.
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
}

/// Runs `vmunet serve`.
pub fn run(a: Args) -> Result<()> {
    let profile = crate::args::load_profile(a.profile.as_deref())?;
    let stop = stop_on_signals().context("cannot install the SIGTERM / SIGINT handlers")?;
    let opts = ServeOptions {
        watch: a.watch,
        out: a.out,
        model: a.model,
        session: SessionOptions {
            runtime: a.runtime,
            profile,
            threads: a.threads,
            ..Default::default()
        },
        size: a.size,
        threshold: a.threshold,
        settle: Duration::from_millis(a.settle_ms),
        poll_interval: Duration::from_millis(a.poll_ms.max(10)),
        poll: a.poll,
        once: a.once,
        health: a.health,
        log: Log {
            format: a.log_format,
        },
    };
    print!("{}", serve(&opts, stop)?.summary());
    Ok(())
}
