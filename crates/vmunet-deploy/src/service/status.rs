//! The service's status: `OUT/status.json` rewritten atomically on every change and at least
//! every few seconds (its `updated` time is the liveness heartbeat), and the same document
//! over HTTP when `--health ADDR` is given:
//!
//! - `GET /health/live`: 200 while the service loop runs;
//! - `GET /health/ready`: 200 once the model is loaded and the folder watched, else 503;
//! - `GET /status`: the status document.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use vmunet_fs::write_durable;

use crate::DeployError;

/// The last image handled.
#[derive(Debug, Clone, Serialize)]
pub struct LastImage {
    /// File name.
    pub name: String,
    /// `done`, `failed` or `skipped`.
    pub outcome: String,
    /// When (UTC).
    pub time: String,
}

/// The status document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Process id.
    pub pid: u32,
    /// `starting`, `ready`, `stopping`, `stopped` or `error`.
    pub state: String,
    /// The service loop runs.
    pub live: bool,
    /// Model loaded and folder watched.
    pub ready: bool,
    /// The model file.
    pub model: String,
    /// Its SHA-256.
    pub model_sha256: String,
    /// Whether the model is loaded.
    pub model_loaded: bool,
    /// What runs it.
    pub runtime: String,
    /// Execution provider.
    pub provider: String,
    /// Watched folder.
    pub watch: String,
    /// `inotify` or `polling`.
    pub watcher: String,
    /// Images done (over the journal's lifetime).
    pub done: usize,
    /// Images failed (over the journal's lifetime).
    pub failed: usize,
    /// Images seen and not yet processed.
    pub queued: usize,
    /// The last image handled.
    pub last: Option<LastImage>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When the service started (UTC).
    pub started: String,
    /// When this document was written (UTC): the heartbeat.
    pub updated: String,
    /// vmunet version.
    pub version: String,
}

/// Shared status, the file it is written to and the HTTP endpoint serving it.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<Status>>,
    path: PathBuf,
}

impl StatusBoard {
    /// A board written to `path`.
    pub fn new(path: &Path, status: Status) -> Self {
        Self {
            inner: Arc::new(Mutex::new(status)),
            path: path.to_path_buf(),
        }
    }

    /// Applies `f` and rewrites the file.
    pub fn update(&self, f: impl FnOnce(&mut Status)) -> Result<(), DeployError> {
        let text = {
            let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s);
            s.updated = crate::utc_timestamp(crate::unix_now());
            serde_json::to_string_pretty(&*s).unwrap_or_default()
        };
        Ok(write_durable(&self.path, format!("{text}\n").as_bytes())?)
    }

    fn snapshot(&self) -> Status {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves `/health/live`, `/health/ready` and `/status` on `addr` in a background thread;
    /// returns the bound address.
    pub fn serve_http(&self, addr: SocketAddr) -> Result<SocketAddr, DeployError> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            DeployError::invalid(
                PathBuf::from(addr.to_string()),
                format!("cannot listen for health checks: {e}"),
            )
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        let board = self.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut line = String::new();
                if BufReader::new(&stream).read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let s = board.snapshot();
                let (code, body) = match path {
                    "/health/live" | "/health" => (
                        if s.live { 200 } else { 503 },
                        serde_json::json!({"live": s.live}).to_string(),
                    ),
                    "/health/ready" => (
                        if s.ready { 200 } else { 503 },
                        serde_json::json!({"ready": s.ready, "state": s.state}).to_string(),
                    ),
                    "/status" => (200, serde_json::to_string(&s).unwrap_or_default()),
                    _ => (404, "{\"error\":\"not found\"}".to_string()),
                };
                let reason = match code {
                    200 => "OK",
                    404 => "Not Found",
                    _ => "Service Unavailable",
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(bound)
    }
}
