//! Test helpers for every crate: capture the spans and log lines a piece of code produces,
//! and parse a `/metrics` exposition into samples.
//!
//! Enable with `common-metrics = { workspace = true, features = ["testing"] }` under
//! `[dev-dependencies]`.
//!
//! [`capture_spans`] installs a subscriber for the **current thread** only
//! (`tracing::subscriber::set_default`), so tests running in parallel do not see each
//! other's spans. Run async code under test on a current-thread runtime (the
//! `#[tokio::test]` default), or hand [`SpanCapture::dispatch`] to tasks on other threads
//! with `tracing::instrument::WithSubscriber::with_subscriber`.

mod metrics_text;

pub use metrics_text::{find, parse_metrics, Exemplar, Sample};

use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tracing::dispatcher::DefaultGuard;
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::logging::{log_layer, LogFormat};

/// Everything down to `trace`, except the transport crates' own `trace`/`debug` spans
/// (h2 alone makes dozens per request), which would bury the spans under test.
const CAPTURE_FILTER: &str =
    "trace,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info,axum=info";

/// Spans and log lines captured for one test. Dropping it uninstalls the subscriber.
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    logs: LogWriter,
    dispatch: Dispatch,
    /// Keeps the subscriber installed on this thread.
    _guard: DefaultGuard,
}

/// Captures spans (sampled always) and JSON log lines on this thread.
pub fn capture_spans() -> SpanCapture {
    capture(Sampler::AlwaysOn, LogFormat::Json)
}

/// Captures spans with `sampler` and JSON log lines on this thread.
pub fn capture_spans_with(sampler: Sampler) -> SpanCapture {
    capture(sampler, LogFormat::Json)
}

/// Captures spans with `sampler` and log lines in `log_format` on this thread.
pub fn capture(sampler: Sampler, log_format: LogFormat) -> SpanCapture {
    let exporter = InMemorySpanExporter::default();
    // The simple processor exports as each span ends, so a test can assert right after
    // the code under test returns, with no flush or wait.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampler)
        .build();
    let logs = LogWriter::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(CAPTURE_FILTER))
        .with(crate::otel::tracing_layer(&provider))
        .with(log_layer(log_format, false, logs.clone()));
    let dispatch = Dispatch::new(subscriber);
    let guard = tracing::dispatcher::set_default(&dispatch);
    SpanCapture {
        exporter,
        provider,
        logs,
        dispatch,
        _guard: guard,
    }
}

impl SpanCapture {
    /// The spans that have ended so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        // Nothing is buffered with the simple processor; flushing keeps that true if the
        // processor ever changes.
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// The first ended span with this (OpenTelemetry) name.
    pub fn span(&self, name: &str) -> Option<SpanData> {
        self.spans().into_iter().find(|s| s.name == name)
    }

    /// The log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// The capturing dispatcher, for futures run on other threads.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Forgets the spans and log lines captured so far.
    pub fn reset(&self) {
        self.exporter.reset();
        self.logs.clear();
    }
}

/// The value of attribute `key` on `span`, as a string.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
}

/// A `MakeWriter` that keeps everything written, for asserting on log output.
#[derive(Clone, Debug, Default)]
pub struct LogWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogWriter {
    /// The complete lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buffer)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Forgets everything written so far.
    pub fn clear(&self) {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_parent_child_spans() {
        let capture = capture_spans();
        tracing::info_span!("parent").in_scope(|| {
            tracing::info_span!("child", otel.name = "child/op", n = 1).in_scope(|| {});
        });
        let child = capture.span("child/op").expect("child span");
        let parent = capture.span("parent").expect("parent span");
        assert_eq!(child.parent_span_id, parent.span_context.span_id());
        assert_eq!(
            child.span_context.trace_id(),
            parent.span_context.trace_id()
        );
        assert_eq!(attribute(&child, "n").as_deref(), Some("1"));
        capture.reset();
        assert!(capture.spans().is_empty());
    }
}
