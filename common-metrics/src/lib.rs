//! Telemetry infrastructure shared by every service: metrics, logs and traces, the same
//! way everywhere (issue #5, DESIGN.md "Telemetry rules").
//!
//! * [`Identity`]: who this instance is (Downward API env with local defaults).
//! * [`new_registry`] / [`namespaced`]: the root prometheus-client registry with identity
//!   labels, `robustmq_build_info`, `process_*` and `robustmq_tokio_*` metrics.
//! * [`http::serve`]: `/metrics` (OpenMetrics or Prometheus text), `/healthz`, `/readyz`.
//! * [`FilesystemCollector`]: free and total space of a data directory's filesystem.
//! * [`LatencyHistogram`]: seconds histograms with trace-id exemplars.
//! * [`init`]: the global subscriber (env filter, JSON/human logs with trace ids and
//!   redaction, OpenTelemetry layer, OTLP export when configured).
//! * [`propagation`]: W3C Trace Context in and out of MQTT user properties, record
//!   headers and HTTP headers.
//! * [`grpc`]: tower layers that trace and measure tonic servers and clients.
//! * `testing` (feature `testing`): span/log capture and a metrics text parser.
//!
//! This crate holds infrastructure only; each module that measures something owns its
//! `*Metrics` struct with `register(&mut Registry) -> Self` beside its code.

mod error;
pub mod exposition;
pub mod filesystem;
pub mod grpc;
pub mod histogram;
pub mod http;
mod identity;
pub mod logging;
pub mod otel;
pub mod process;
pub mod propagation;
mod registry;
pub mod runtime;
mod signal;
mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::Error;
pub use filesystem::FilesystemCollector;
pub use histogram::{
    latency_buckets, latency_family, LatencyBatch, LatencyFamily, LatencyHistogram, TraceLabel,
};
pub use http::{serve, Readiness};
pub use identity::{Identity, NodeIdSpec};
pub use logging::LogFormat;
pub use registry::{namespaced, new_registry, NAMESPACE};
pub use signal::shutdown_signal;
pub use telemetry::{
    init, init_for_tests, init_with_env, TelemetryConfig, TelemetryGuard, DEFAULT_TRACE_FILTER,
};
