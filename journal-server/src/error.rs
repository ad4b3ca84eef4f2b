//! Errors of the journal server, and their one mapping to gRPC status codes.

use std::path::{Path, PathBuf};

/// A storage failure: I/O on a named file, or data that fails its checks.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A configuration problem; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Every failure a journal operation reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("shard {0:?} not found on this node")]
    ShardNotFound(String),
    #[error("shard {0:?} already exists")]
    ShardExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    OutOfRange(String),
    /// This node does not lead the shard; the leader, when known, is named.
    #[error("not the leader of shard {shard:?}{}", leader_hint(.leader_id, .leader_addr))]
    NotLeader {
        shard: String,
        leader_id: u64,
        leader_addr: String,
    },
    #[error(
        "not enough in-sync replicas for shard {shard:?}: {in_sync} in sync, {required} required"
    )]
    NotEnoughReplicas {
        shard: String,
        in_sync: usize,
        required: usize,
    },
    /// The request was refused before anything was written: safe to retry (elsewhere).
    #[error("{0}")]
    Rejected(String),
    /// The outcome of an append is unknown (leadership changed or the acknowledgement
    /// timed out): the records may or may not become visible.
    #[error("{0}")]
    Unavailable(String),
    #[error("the journal server is shutting down")]
    ShuttingDown,
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

fn leader_hint(id: &u64, addr: &str) -> String {
    if *id == 0 {
        "; no leader known".into()
    } else {
        format!("; the leader is node {id} at {addr}")
    }
}

pub use journal_client::LEADER_ADDR_METADATA;
/// Metadata key carrying the leader's node id on a `NotLeader` error.
pub const LEADER_ID_METADATA: &str = "x-journal-leader-id";

impl From<JournalError> for tonic::Status {
    fn from(e: JournalError) -> Self {
        use tonic::Code;
        let message = e.to_string();
        let code = match &e {
            JournalError::Storage(StorageError::Corrupt { .. }) => Code::DataLoss,
            JournalError::Storage(_) | JournalError::Config(_) | JournalError::Bind { .. } => {
                Code::Internal
            }
            JournalError::ShardNotFound(_) => Code::NotFound,
            JournalError::ShardExists(_) => Code::AlreadyExists,
            JournalError::InvalidArgument(_) => Code::InvalidArgument,
            JournalError::OutOfRange(_) => Code::OutOfRange,
            // FailedPrecondition means "not written, retry (at the leader)".
            JournalError::NotLeader { .. }
            | JournalError::NotEnoughReplicas { .. }
            | JournalError::Rejected(_) => Code::FailedPrecondition,
            JournalError::Unavailable(_) | JournalError::ShuttingDown => Code::Unavailable,
        };
        let mut status = tonic::Status::new(code, message);
        if let JournalError::NotLeader {
            leader_id,
            leader_addr,
            ..
        } = &e
        {
            if *leader_id != 0 {
                if let (Ok(id), Ok(addr)) = (leader_id.to_string().parse(), leader_addr.parse()) {
                    status.metadata_mut().insert(LEADER_ID_METADATA, id);
                    status.metadata_mut().insert(LEADER_ADDR_METADATA, addr);
                }
            }
        }
        status
    }
}

pub type Result<T, E = JournalError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader_in_metadata() {
        let status = tonic::Status::from(JournalError::NotLeader {
            shard: "s".into(),
            leader_id: 2,
            leader_addr: "127.0.0.1:9".into(),
        });
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("node 2 at 127.0.0.1:9"));
        assert_eq!(
            status.metadata().get(LEADER_ADDR_METADATA).unwrap(),
            "127.0.0.1:9"
        );
        let status = tonic::Status::from(JournalError::ShardNotFound("x".into()));
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
}
