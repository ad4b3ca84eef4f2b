//! Errors of the broker crate.

use std::path::PathBuf;

/// A configuration problem; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Errors that stop the broker from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup for listener {addr}: {message}")]
    Tls {
        addr: std::net::SocketAddr,
        message: String,
    },
    #[error("{path}: {message}")]
    AuthFile { path: PathBuf, message: String },
    #[error("telemetry: {0}")]
    Telemetry(String),
}
