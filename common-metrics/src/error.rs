//! The ways setting up telemetry can fail.
//!
//! Recording a metric, a span or a log line never fails: only start-up does, and then the
//! service should refuse to start with one of these messages rather than run blind.

/// A telemetry set-up error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A log or trace filter (from `RUST_LOG` or the config) does not parse.
    #[error("invalid filter {filter:?} (from {source_name}): {source}")]
    InvalidLogFilter {
        /// The directive string that was rejected.
        filter: String,
        /// Where it came from: `RUST_LOG`, `log_filter` or `trace_filter`.
        source_name: &'static str,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },

    /// The OTLP span exporter could not be built (bad endpoint URL, TLS, headers…).
    #[error("cannot build the OTLP trace exporter for {endpoint:?}: {source}")]
    Exporter {
        /// The endpoint that was configured.
        endpoint: String,
        /// The exporter's complaint.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    /// OTLP export was requested outside a Tokio runtime; the gRPC channel needs one.
    #[error("OTLP export to {endpoint:?} needs a Tokio runtime: call telemetry init from inside the runtime")]
    NoRuntime {
        /// The endpoint that was configured.
        endpoint: String,
    },

    /// Another global `tracing` subscriber was installed first.
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInitialized(#[from] tracing_subscriber::util::TryInitError),
}
