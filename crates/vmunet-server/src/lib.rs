//! `vmunet serve --http`: an Open Inference Protocol REST server (KServe v2, as Triton,
//! KServe, Seldon MLServer and OpenVINO Model Server speak it) for vmunet models, on hyper
//! and tokio.
//!
//! - health, server and model metadata, readiness, `infer` with JSON tensors and Triton's
//!   binary tensor extension (what `tritonclient.http` sends by default), FP32 / FP16 / UINT8
//!   inputs, request ids, the protocol's error bodies ([`protocol`], [`tensor`]);
//! - several models at once, each on its own worker thread with a bounded queue and dynamic
//!   batching ([`model`]);
//! - `POST /v2/models/{m}/segment`: a photo in, the mask PNG (or the JSON record) out, through
//!   the library's segmentation pipeline ([`segment`]);
//! - the page at `/` ([`page`]), Prometheus metrics at `/metrics` ([`metrics`]);
//! - limits: loopback by default (the caller chooses the address), request-body and
//!   decoded-pixel limits, header and body timeouts, a connection limit, bounded queues
//!   answering 503 with `Retry-After`, optional bearer-token auth and TLS (rustls), graceful
//!   drain on stop.

#![deny(missing_docs)]

mod error;
mod http;
pub mod metrics;
pub mod model;
pub mod page;
pub mod protocol;
pub mod segment;
pub mod tensor;
mod tls;

pub use tls::TlsFiles;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use error::{ApiError, ServerError};
pub use model::{Batching, ModelInfo, ModelSource, ModelSpec, ServedModel};

/// The limits that keep one client from taking the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, bytes (413 above it).
    pub max_body_bytes: usize,
    /// Largest photo `/segment` decodes, in pixels (413 above it, read from the header).
    pub max_pixels: u64,
    /// Time a client has to send a request's head (the connection is closed after it).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its head arrived (408 after it).
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Photos decoded or turned into masks at once (each holds its full-size pixels): bounds
    /// the memory `/segment` uses whatever the number of clients.
    pub image_slots: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_pixels: 64_000_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            image_slots: 4,
        }
    }
}

/// What to serve, where and how.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on (loopback unless the operator says otherwise).
    pub addr: SocketAddr,
    /// Models.
    pub models: Vec<ModelSpec>,
    /// Limits.
    pub limits: Limits,
    /// Bearer token every request but health probes and the page's own files must carry.
    pub token: Option<String>,
    /// The watch-folder service's output folder, when one runs beside: its records are listed
    /// on the page.
    pub watch_out: Option<PathBuf>,
    /// Threads of the async runtime (network, decoding runs on its blocking pool).
    pub threads: usize,
    /// How long a stop waits for requests in flight.
    pub drain: Duration,
    /// Serve HTTPS with this certificate and key (None: plain HTTP).
    pub tls: Option<TlsFiles>,
}

impl ServerOptions {
    /// Options for `models` on `addr` with default limits, no token.
    pub fn new(addr: SocketAddr, models: Vec<ModelSpec>) -> Self {
        Self {
            addr,
            models,
            limits: Limits::default(),
            token: None,
            watch_out: None,
            threads: 2,
            drain: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// What a server did, for the summary printed when it stops.
#[derive(Debug, Clone, Default)]
pub struct ServerSummary {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered 4xx.
    pub client_errors: u64,
    /// Requests answered 5xx (503 under overload included).
    pub server_errors: u64,
    /// Connections still open when the drain time ran out.
    pub cut: usize,
}

impl ServerSummary {
    /// One line.
    pub fn summary(&self) -> String {
        format!(
            "served {} requests ({} client errors, {} server errors){}\n",
            self.ok + self.client_errors + self.server_errors,
            self.client_errors,
            self.server_errors,
            if self.cut > 0 {
                format!("; {} connections cut after the drain time", self.cut)
            } else {
                String::new()
            }
        )
    }
}

/// A server with its models open and its socket bound, not yet serving.
pub struct Server {
    state: Arc<http::State>,
    listener: std::net::TcpListener,
    workers: Vec<std::thread::JoinHandle<()>>,
    threads: usize,
    blocking_threads: usize,
    drain: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

/// A model name usable in a URL path segment.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Server {
    /// Opens every model (each runs once at its input size) and binds the address.
    pub fn bind(opts: ServerOptions) -> Result<Self, ServerError> {
        if opts.models.is_empty() {
            return Err(ServerError::NoModel);
        }
        // The certificate first: a bad file is reported before any model loads.
        let tls = opts.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let mut names = std::collections::HashSet::new();
        for m in &opts.models {
            if !valid_name(&m.name) {
                return Err(ServerError::BadName(m.name.clone()));
            }
            if !names.insert(m.name.clone()) {
                return Err(ServerError::DuplicateName(m.name.clone()));
            }
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let mut models = Vec::new();
        let mut workers = Vec::new();
        for spec in opts.models {
            let (m, h) = ServedModel::start(spec, metrics.clone())?;
            models.push(Arc::new(m));
            workers.push(h);
        }
        let listener =
            std::net::TcpListener::bind(opts.addr).map_err(|source| ServerError::Listen {
                addr: opts.addr,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Listen {
                addr: opts.addr,
                source,
            })?;
        let state = Arc::new(http::State {
            models,
            metrics,
            limits: opts.limits,
            token: opts.token,
            recent: segment::Recent::new(50),
            image_slots: tokio::sync::Semaphore::new(opts.limits.image_slots.max(1)),
            watch_out: opts.watch_out,
            tls,
        });
        Ok(Self {
            state,
            listener,
            workers,
            threads: opts.threads.max(1),
            blocking_threads: opts.limits.image_slots.max(1) + 2,
            drain: opts.drain,
        })
    }

    /// The bound address (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The models served.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.state.models.iter().map(|m| m.info.clone()).collect()
    }

    /// Serves until `stop` is raised, then stops accepting, lets requests in flight finish
    /// (up to the drain time) and stops the model workers after their queues are empty.
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<ServerSummary, ServerError> {
        // Decoding and mask making run on the blocking pool, at most `image_slots` at a time:
        // a small pool keeps the allocator's per-thread arenas (and so the memory) few.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .max_blocking_threads(self.blocking_threads)
            .thread_name("vmunet-http")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let Server {
            state,
            listener,
            workers,
            drain,
            ..
        } = self;
        let cut = rt.block_on(http::serve(listener, state.clone(), stop, drain))?;
        rt.shutdown_timeout(Duration::from_secs(1));
        let summary = ServerSummary {
            ok: (200..300).map(|s| state.metrics.count(s)).sum(),
            client_errors: (400..500).map(|s| state.metrics.count(s)).sum(),
            server_errors: (500..600).map(|s| state.metrics.count(s)).sum(),
            cut,
        };
        // The last queue senders go with the state: each worker finishes and returns.
        drop(state);
        for w in workers {
            let _ = w.join();
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;
