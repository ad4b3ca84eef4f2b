//! The ways starting, watching and stopping the local cluster fail. Every variant that is
//! about one process names it and, where the process wrote a log, carries its last lines:
//! "not ready" alone is no help at 2 a.m.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::Service;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the launcher library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path or process it concerned.
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The plan contradicts itself (duplicate ids, port overflow, no placement center).
    #[error("invalid cluster plan: {0}")]
    Plan(String),
    /// A service binary is not where the plan says.
    #[error(
        "binary {} not found; build it with `cargo build -p {package} --bins` or point --bin-dir at it",
        path.display()
    )]
    MissingBinary {
        /// The path that was looked at.
        path: PathBuf,
        /// The cargo package that builds it.
        package: &'static str,
    },
    /// The `cargo build` of the service binaries failed.
    #[error("`{command}` failed ({status})")]
    Build {
        /// The command line, for copy and paste.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A process did not answer 200 on `/readyz` before the deadline.
    #[error("{name} not ready after {timeout:?} (last /readyz answer: {last}); last lines of {}:\n{tail}", log.display())]
    NotReady {
        /// The process, e.g. `mqtt-broker-2`.
        name: String,
        /// How long it was given.
        timeout: Duration,
        /// The last probe result (status and body, or the connection error).
        last: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A process exited while the cluster was starting or restarting it.
    #[error("{name} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    ExitedEarly {
        /// The process, e.g. `journal-server-1`.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A port of the plan is taken before the process that should listen there started,
    /// e.g. by another local cluster (its `/readyz` would fool the readiness wait).
    #[error("{addr} ({name}) is already in use: is another local cluster running? (`--port-offset N` runs a second one)")]
    PortInUse {
        /// The process and listener, e.g. `mqtt-broker-1 MQTT`.
        name: String,
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// `kill`/`restart` named a process the plan does not have.
    #[error("no {service} node {node} in this cluster")]
    UnknownProcess {
        /// The service asked for.
        service: Service,
        /// The node id asked for.
        node: u64,
    },
    /// Refusing to wipe a directory the launcher did not create.
    #[error(
        "refusing to wipe {}: it is not empty and has no {marker} marker (not a local-cluster root?)",
        path.display()
    )]
    NotOurs {
        /// The directory `--fresh` would have removed.
        path: PathBuf,
        /// The marker file name that is missing.
        marker: &'static str,
    },
    /// The placement client could not be built.
    #[error("placement client: {0}")]
    Placement(#[from] placement_client::Error),
}

impl Error {
    /// An [`Error::Io`] with a description of what failed.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
