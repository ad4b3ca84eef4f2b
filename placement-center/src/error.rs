//! The crate's error type and its one mapping onto gRPC status codes.

use std::path::PathBuf;

/// Everything the placement center can fail with, as seen by a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file could not be read.
    #[error("reading config {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configuration file or flag holds a bad value; names the file and the field.
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    /// A request argument is wrong (oversized value, empty key, bad revision or TTL).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The addressed lease (or other object) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A watch asked for events older than this node keeps.
    #[error("revision {requested} has been compacted; the oldest revision available is {oldest}")]
    Compacted { requested: i64, oldest: i64 },
    /// No leader is known, or the leader cannot be reached / confirm its leadership.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This node is not the leader; the leader's id when known. Nothing was proposed, so the
    /// request may be retried (the server retries it itself before giving up).
    #[error("not the leader (leader: {0:?})")]
    NotLeader(Option<u64>),
    /// The request cannot run in the cluster's current state (e.g. a bad membership change).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// RocksDB failed.
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    /// Stored bytes could not be decoded: the data directory is damaged or from another version.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Binding a socket failed.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// Raft stopped or failed fatally.
    #[error("raft: {0}")]
    Raft(String),
    /// Any other I/O failure (data directory, snapshot files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::InvalidArgument(_) | Error::Config { .. } | Error::ConfigRead { .. } => {
                tonic::Status::invalid_argument(message)
            }
            Error::NotFound(_) => tonic::Status::not_found(message),
            Error::Compacted { .. } => tonic::Status::out_of_range(message),
            Error::Unavailable(_) => tonic::Status::unavailable(message),
            Error::NotLeader(leader) => {
                let mut status = tonic::Status::unavailable(message);
                // A machine-readable hint: peers and clients retry without parsing text.
                let hint = leader.map_or_else(|| "none".to_owned(), |id| id.to_string());
                if let Ok(value) = hint.parse() {
                    status.metadata_mut().insert(NOT_LEADER_METADATA, value);
                }
                status
            }
            Error::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            Error::Corrupt(_) => tonic::Status::data_loss(message),
            Error::Storage(_) | Error::Bind { .. } | Error::Raft(_) | Error::Io(_) => {
                tonic::Status::internal(message)
            }
        }
    }
}

impl Error {
    /// Rebuilds an error from a gRPC status returned by a peer (forwarded requests), so the
    /// client of this node sees the leader's code.
    pub fn from_status(status: &tonic::Status) -> Self {
        let message = status.message().to_owned();
        if let Some(hint) = status.metadata().get(NOT_LEADER_METADATA) {
            return Error::NotLeader(hint.to_str().ok().and_then(|s| s.parse().ok()));
        }
        match status.code() {
            tonic::Code::InvalidArgument => Error::InvalidArgument(message),
            tonic::Code::NotFound => Error::NotFound(message),
            tonic::Code::FailedPrecondition => Error::FailedPrecondition(message),
            _ => Error::Unavailable(format!("leader: {message}")),
        }
    }
}

/// gRPC metadata key set on UNAVAILABLE replies that mean "not the leader, nothing was
/// proposed"; its value is the leader's id or `none`.
pub const NOT_LEADER_METADATA: &str = "placement-not-leader";

impl Error {
    /// A copy for fanning one failure out to every request of a batch (variants that carry
    /// sources become `Unavailable` with the same text).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::NotLeader(l) => Error::NotLeader(*l),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::NotFound(m) => Error::NotFound(m.clone()),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        let s: tonic::Status = Error::Compacted {
            requested: 1,
            oldest: 5,
        }
        .into();
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        let s: tonic::Status = Error::InvalidArgument("value too large".into()).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: tonic::Status = Error::Unavailable("no leader".into()).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let back = Error::from_status(&tonic::Status::not_found("lease 7"));
        assert!(matches!(back, Error::NotFound(_)));
        let s: tonic::Status = Error::NotLeader(Some(3)).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(matches!(Error::from_status(&s), Error::NotLeader(Some(3))));
        let s: tonic::Status = Error::NotLeader(None).into();
        assert!(matches!(Error::from_status(&s), Error::NotLeader(None)));
    }
}
