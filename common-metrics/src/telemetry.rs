//! One call at start-up that installs logs and traces for the whole process.
//!
//! [`init`] installs the global `tracing` subscriber: the log layer (JSON or human) and
//! the `tracing-opentelemetry` layer, each behind its own filter, plus the W3C propagator
//! and tracer provider as OpenTelemetry globals (and the `log` crate bridge). It returns a [`TelemetryGuard`]; keep it
//! alive in `main` and drop it (or call [`TelemetryGuard::shutdown`]) at exit so queued
//! spans are flushed.

use std::sync::Once;
use std::time::Duration;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::Error;
use crate::identity::Identity;
use crate::logging::{env_filter, log_layer, LogFormat};
use crate::otel;

/// Spans at `info` and above are traced unless `trace_filter` says otherwise; libraries'
/// `debug`/`trace` spans (h2 makes dozens per request) stay out of traces.
pub const DEFAULT_TRACE_FILTER: &str = "info";

/// Telemetry settings, as found in each service's config file (section `[telemetry]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `auto` (JSON unless stdout is a terminal), `json` or `pretty`.
    pub log_format: LogFormat,
    /// Log filter directives (`info,mqtt_broker=debug`); `RUST_LOG` wins when set.
    /// Applies to log lines only, so quieting logs never silences traces.
    pub log_filter: Option<String>,
    /// Which spans become OpenTelemetry spans (same directive syntax); default
    /// [`DEFAULT_TRACE_FILTER`]. Separate from the log filter: `RUST_LOG=debug` for a
    /// debugging session should not flood the trace backend with debug spans.
    pub trace_filter: Option<String>,
    /// Put the identity on every metric as constant labels (see [`crate::new_registry`]).
    pub identity_labels: bool,
    /// Whether services record metrics at all; `false` lets a benchmark measure the
    /// service without them.
    pub metrics_enabled: bool,
    /// Whether spans become OpenTelemetry spans at all (and are exported, with an
    /// endpoint); `false` leaves logs only, so a benchmark can measure the service
    /// without tracing.
    pub tracing_enabled: bool,
    /// OTLP/gRPC endpoint (`http://otel-collector:4317`). The standard
    /// `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` variables override it; with neither, no
    /// exporter runs.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Auto,
            log_filter: None,
            trace_filter: None,
            identity_labels: true,
            metrics_enabled: true,
            tracing_enabled: true,
            otlp_endpoint: None,
        }
    }
}

/// Flushes and shuts down the tracer provider when dropped.
///
/// With an exporter, shutdown waits (at most 5 s) for the last batch to reach the
/// collector over the tonic channel, whose I/O runs on the Tokio runtime: drop the guard
/// while that runtime is still running and not on a current-thread runtime's only thread
/// (the end of `#[tokio::main] async fn main` on the default multi-thread runtime is
/// fine).
#[derive(Debug)]
#[must_use = "dropping the guard shuts tracing down; keep it alive in main"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

impl TelemetryGuard {
    /// Whether spans are being exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// The tracer provider, e.g. to build a second tracer for a library.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Flushes queued spans and shuts the provider down now.
    pub fn shutdown(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Errors here mean the collector is unreachable at exit; there is nowhere
            // left to report that except stderr, and exiting must not hang or panic.
            if let Err(err) = provider.force_flush() {
                eprintln!("telemetry: flushing spans failed: {err}");
            }
            if let Err(err) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                eprintln!("telemetry: shutting down the tracer provider failed: {err}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Installs logs and traces for the process, reading the environment.
///
/// Call once, early in `main`, inside the Tokio runtime (needed when exporting).
pub fn init(identity: &Identity, config: &TelemetryConfig) -> Result<TelemetryGuard, Error> {
    init_with_env(identity, config, |key| std::env::var(key).ok())
}

/// Like [`init`], with the environment lookup supplied by the caller (for tests, which
/// must not mutate the process environment that parallel tests share). Variables read
/// through it: `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`.
pub fn init_with_env(
    identity: &Identity,
    config: &TelemetryConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<TelemetryGuard, Error> {
    let log_filter = env_filter(lookup("RUST_LOG"), config.log_filter.as_deref())?;
    let trace_filter = trace_filter(config.trace_filter.as_deref())?;
    let endpoint = config
        .tracing_enabled
        .then(|| otel::otlp_endpoint(config.otlp_endpoint.as_deref(), &lookup))
        .flatten();
    let provider = if config.tracing_enabled {
        Some(otel::tracer_provider(
            otel::resource(identity, &lookup),
            endpoint.as_deref(),
        )?)
    } else {
        None
    };

    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Per-layer filters: each layer sees only what its own filter enables. Without
    // tracing there is no OpenTelemetry layer at all, and the global tracer stays the
    // no-op one.
    tracing_subscriber::registry()
        .with(
            provider
                .as_ref()
                .map(|p| otel::tracing_layer(p).with_filter(trace_filter)),
        )
        .with(log_layer(config.log_format, ansi, std::io::stdout).with_filter(log_filter))
        .try_init()?;

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    tracing::debug!(
        service = %identity.service,
        tracing = config.tracing_enabled,
        otlp_endpoint = endpoint.as_deref().unwrap_or("none"),
        "telemetry initialised"
    );
    Ok(TelemetryGuard {
        exporting: endpoint.is_some(),
        provider,
    })
}

/// Parses the span filter for the OpenTelemetry layer.
fn trace_filter(configured: Option<&str>) -> Result<EnvFilter, Error> {
    let filter = configured.unwrap_or(DEFAULT_TRACE_FILTER);
    EnvFilter::builder()
        .parse(filter)
        .map_err(|source| Error::InvalidLogFilter {
            filter: filter.to_owned(),
            source_name: "trace_filter",
            source,
        })
}

/// Installs a global subscriber for tests once per process: human format to the test
/// harness's captured output, filter from `RUST_LOG` (default `info`), no exporter.
/// Later calls, and calls after another global subscriber was installed, do nothing.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = env_filter(std::env::var("RUST_LOG").ok(), None)
            .unwrap_or_else(|_| EnvFilter::new("info"));
        let provider = SdkTracerProvider::builder().build();
        let log = tracing_subscriber::fmt::layer()
            .event_format(crate::logging::human::HumanFormat::default())
            .fmt_fields(crate::logging::human::HumanFields)
            .with_test_writer();
        // Another harness may own the global subscriber already; that is fine for tests.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(otel::tracing_layer(&provider))
            .with(log)
            .try_init();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_parsing() {
        let config: TelemetryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, TelemetryConfig::default());
        assert!(config.identity_labels && config.metrics_enabled && config.tracing_enabled);
        let config: TelemetryConfig = serde_json::from_str(
            r#"{"log_format":"json","log_filter":"debug","identity_labels":false,
                "tracing_enabled":false,"otlp_endpoint":"http://collector:4317"}"#,
        )
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(!config.identity_labels && !config.tracing_enabled);
        assert!(serde_json::from_str::<TelemetryConfig>(r#"{"log_fromat":"json"}"#).is_err());
        assert!(trace_filter(None).is_ok());
        let err = trace_filter(Some("=[")).unwrap_err();
        assert!(err.to_string().contains("trace_filter"), "{err}");
    }

    #[test]
    fn init_for_tests_is_idempotent() {
        init_for_tests();
        init_for_tests();
        tracing::info!("logged through the test subscriber");
    }
}
