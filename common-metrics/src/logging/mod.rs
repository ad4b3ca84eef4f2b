//! Structured logs: JSON lines for machines, a human format for terminals, both with
//! secrets redacted and the trace/span ids of the current span on every line.
//!
//! The formats are `tracing-subscriber` fmt layers with our own event and field
//! formatters ([`json::JsonFormat`], [`human::HumanFormat`]); the redaction rule lives in
//! [`redact`]. [`crate::telemetry::init`] installs one of them globally; tests build their
//! own with [`log_layer`] and a capturing writer.

pub mod human;
pub mod json;
pub mod redact;

use std::io::IsTerminal;
use std::str::FromStr;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry::Context;
use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::Error;

/// The filter used when neither `RUST_LOG` nor the config sets one.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Which log format to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON unless stdout is a terminal.
    #[default]
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable lines, coloured on a terminal.
    Pretty,
}

impl LogFormat {
    /// Resolves `Auto` against stdout: a terminal gets `Pretty`, anything else `Json`.
    pub fn resolve(self) -> LogFormat {
        match self {
            LogFormat::Auto if std::io::stdout().is_terminal() => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    /// Parses `auto`, `json` or `pretty`, so a `--log-format` flag can use it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" | "human" => Ok(LogFormat::Pretty),
            other => Err(format!("unknown log format {other:?} (auto, json, pretty)")),
        }
    }
}

/// A fmt layer writing `format` to `writer`. `Auto` is resolved against stdout; `ansi`
/// colours the pretty format (JSON never has colours).
pub fn log_layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format.resolve() {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(json::JsonFormat::default())
            .fmt_fields(json::JsonFields)
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
        _ => tracing_subscriber::fmt::layer()
            .event_format(human::HumanFormat::default())
            .fmt_fields(human::HumanFields)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
}

/// The level filter: `RUST_LOG` when set and non-empty, else `configured`, else
/// [`DEFAULT_LOG_FILTER`]. An invalid filter is an error, not a silent default: a typo in
/// `RUST_LOG` should not quietly hide the logs someone is trying to see.
pub fn env_filter(rust_log: Option<String>, configured: Option<&str>) -> Result<EnvFilter, Error> {
    let (filter, source_name) = match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(filter) => (filter, "RUST_LOG"),
        None => (
            configured.unwrap_or(DEFAULT_LOG_FILTER).to_owned(),
            "log_filter",
        ),
    };
    EnvFilter::builder()
        .parse(&filter)
        .map_err(|source| Error::InvalidLogFilter {
            filter,
            source_name,
            source,
        })
}

/// Trace and span id of the current OpenTelemetry context, which `tracing-opentelemetry`
/// attaches when a span is entered. A thread-local read, so cheap on every line.
pub(crate) fn trace_ids() -> Option<(TraceId, SpanId)> {
    Context::map_current(|cx| {
        if !cx.has_active_span() {
            return None;
        }
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{capture, capture_spans};
    use opentelemetry_sdk::trace::Sampler;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    #[test]
    fn parses_format_names() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::Json.resolve(), LogFormat::Json);
    }

    #[test]
    fn rust_log_wins_and_bad_filters_are_errors() {
        assert_eq!(
            env_filter(Some("debug".into()), Some("warn"))
                .unwrap()
                .to_string(),
            "debug"
        );
        assert_eq!(
            env_filter(Some(" ".into()), Some("warn"))
                .unwrap()
                .to_string(),
            "warn"
        );
        assert_eq!(env_filter(None, None).unwrap().to_string(), "info");
        let err = env_filter(Some("=[".into()), None).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }

    #[test]
    fn json_line_redacts_and_carries_trace_ids() {
        let capture = capture_spans();
        let span = tracing::info_span!("mqtt.connect", client_id = "c1", auth_token = "tok-123");
        let sc = span.context().span().span_context().clone();
        span.in_scope(|| {
            tracing::info!(
                password = "hunter2",
                user = "bob",
                qos = 1u8,
                "client connected"
            );
        });
        let lines = capture.log_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            !line.contains("hunter2") && !line.contains("tok-123"),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        assert_eq!(json["password"], "[redacted]");
        assert_eq!(json["user"], "bob");
        assert_eq!(json["qos"], 1);
        assert_eq!(json["message"], "client connected");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["span"]["name"], "mqtt.connect");
        assert_eq!(json["span"]["client_id"], "c1");
        assert_eq!(json["span"]["auth_token"], "[redacted]");
        assert_eq!(json["trace_id"], sc.trace_id().to_string());
        assert_eq!(json["span_id"], sc.span_id().to_string());
    }

    #[test]
    fn json_line_outside_span_has_no_ids() {
        let capture = capture_spans();
        tracing::warn!(secret = "s3", "plain");
        let json: serde_json::Value = serde_json::from_str(&capture.log_lines()[0]).unwrap();
        assert_eq!(json["secret"], "[redacted]");
        assert!(json.get("trace_id").is_none() && json.get("span").is_none());
    }

    #[test]
    fn pretty_line_redacts_and_carries_trace_ids() {
        let capture = capture(Sampler::AlwaysOn, LogFormat::Pretty);
        let span = tracing::info_span!("op", api_key = "k-1");
        let sc = span.context().span().span_context().clone();
        span.in_scope(|| tracing::info!(password = "hunter2", n = 3, "hello"));
        let line = capture.log_lines().pop().expect("one line");
        assert!(line.contains(" INFO op{api_key=[redacted]}: "), "{line}");
        assert!(
            line.contains(": hello password=[redacted] n=3 trace_id="),
            "{line}"
        );
        assert!(!line.contains("hunter2") && !line.contains("k-1"), "{line}");
        assert!(
            line.ends_with(&format!(
                "trace_id={} span_id={}",
                sc.trace_id(),
                sc.span_id()
            )),
            "{line}"
        );
    }
}
