//! The client's error type.

/// What a placement-center call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoint was given, or one does not parse.
    #[error("bad endpoint configuration: {0}")]
    Config(String),
    /// The server refused the request (a non-retryable status: bad argument, unknown lease,
    /// not a member, ...).
    #[error("placement center: {}: {}", .0.code(), .0.message())]
    Status(Box<tonic::Status>),
    /// A watch asked for revisions the server no longer keeps; re-read and watch anew.
    #[error("watch revision compacted: {0}")]
    Compacted(String),
    /// No member answered successfully before the deadline.
    #[error("no placement center member answered within {timeout:?}; last error: {last}")]
    DeadlineExceeded {
        timeout: std::time::Duration,
        last: String,
    },
}

impl Error {
    /// The gRPC code of a server refusal.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(s) => Some(s.code()),
            Error::Compacted(_) => Some(tonic::Code::OutOfRange),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
