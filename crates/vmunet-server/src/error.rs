//! Errors: [`ApiError`] is what a client is told (a status and the protocol's error body);
//! [`ServerError`] is why the server cannot start or run.

use std::path::PathBuf;

use hyper::StatusCode;

/// An error answered to a client: HTTP status, message, and for an overloaded queue the
/// seconds after which to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The error body's message.
    pub message: String,
    /// `Retry-After` seconds (503 when the queue is full).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such model, version or path.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503 with `Retry-After`: the model's queue is full.
    pub fn overloaded(model: &str, retry_after: u32) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("model '{model}' is busy: its queue is full; retry later"),
            retry_after: Some(retry_after),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A model cannot be opened or does not run at its input size.
    #[error("model '{name}' ({}): {reason}", path.display())]
    Model {
        /// Model name.
        name: String,
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two models were given the same name.
    #[error("two models are named '{0}': name them with NAME=PATH")]
    DuplicateName(String),
    /// A model name that cannot be used in a URL path.
    #[error("model name '{0}' must be 1-64 of A-Z a-z 0-9 . _ - (it is part of the URL)")]
    BadName(String),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {}: {reason}", path.display())]
    Tls {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No model to serve.
    #[error("no model to serve")]
    NoModel,
    /// The async runtime could not start.
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
    /// The embedded model could not be written to its cache file.
    #[error(transparent)]
    Embedded(#[from] vmunet_embedded::MaterializeError),
}
