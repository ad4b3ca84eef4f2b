//! The OpenTelemetry tracer provider: resource (who is speaking), sampler, and the OTLP
//! exporter when an endpoint is configured.
//!
//! A provider is installed even without an endpoint. It has no span processor, so it
//! starts no thread and exports nothing, but spans still get real trace and span ids:
//! logs correlate by `trace_id`, and a service without an exporter still passes a
//! *new* `traceparent` downstream (with a no-op tracer it would forward its caller's ids,
//! and the next service's spans would claim a parent that does not exist). The cost is
//! measured in `benches/telemetry.rs` (span "no exporter").
//!
//! Read from the environment by the SDK itself, not here: `OTEL_TRACES_SAMPLER(_ARG)`
//! (default `parentbased_always_on`, the same as `parentbased_traceidratio` at 1.0),
//! `OTEL_BSP_*` (batch queue size 2048, batch 512, delay 5 s), `OTEL_SPAN_*_LIMIT`,
//! `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT,COMPRESSION,INSECURE}`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

use crate::error::Error;
use crate::identity::Identity;
use crate::logging::redact::{is_secret_field, REDACTED};

/// The `tracing-opentelemetry` layer over `provider`, set up for hot paths: no thread
/// attributes (`thread.name` is a `String` allocated per span) and no busy/idle timing
/// (extra clock reads and an extension per span). Source location attributes, static
/// strings, are kept. Every subscriber in this crate uses it, so tests and benches measure
/// what services run.
pub fn tracing_layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// The OTLP endpoint to export to, if any: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, then the configured one (environment overrides the
/// config file, as everywhere in this project).
pub fn otlp_endpoint(
    configured: Option<&str>,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Option<String> {
    lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| lookup("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .or_else(|| configured.map(str::to_owned))
        .filter(|endpoint| !endpoint.trim().is_empty())
}

/// Builds the tracer provider; with `endpoint`, spans go through a bounded batch queue
/// to an OTLP/gRPC exporter. Must run inside a Tokio runtime when exporting.
pub fn tracer_provider(
    resource: Resource,
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, Error> {
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = endpoint else {
        return Ok(builder.build());
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoRuntime {
            endpoint: endpoint.to_owned(),
        });
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| Error::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    // The batch processor's queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE): when the
    // collector is slow or down, spans are dropped rather than memory growing.
    let batch = BatchSpanProcessor::builder(exporter).build();
    Ok(builder
        .with_span_processor(RedactingProcessor::new(batch))
        .build())
}

/// The resource describing this instance.
///
/// Precedence, lowest first: identity-derived attributes, then `OTEL_RESOURCE_ATTRIBUTES`,
/// then `OTEL_SERVICE_NAME` for `service.name` (the OpenTelemetry spec's order).
pub fn resource(identity: &Identity, lookup: &impl Fn(&str) -> Option<String>) -> Resource {
    let own = [
        KeyValue::new("service.name", identity.service.clone()),
        KeyValue::new("service.version", identity.version.clone()),
        KeyValue::new("service.instance.id", identity.instance_id()),
        KeyValue::new("k8s.pod.name", identity.pod.clone()),
        KeyValue::new("k8s.namespace.name", identity.namespace.clone()),
        KeyValue::new("k8s.node.name", identity.node.clone()),
        KeyValue::new("k8s.cluster.name", identity.cluster.clone()),
    ];
    let mut builder = Resource::builder_empty()
        .with_attributes(
            TelemetryResourceDetector
                .detect()
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attributes(own)
        .with_attributes(
            lookup("OTEL_RESOURCE_ATTRIBUTES")
                .map(|text| parse_resource_attributes(&text))
                .unwrap_or_default(),
        );
    if let Some(name) = lookup("OTEL_SERVICE_NAME").filter(|n| !n.trim().is_empty()) {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

/// Parses `key1=value1,key2=value2` with percent-encoded values (W3C Baggage octets, as
/// the spec says); entries without `=` are skipped.
fn parse_resource_attributes(text: &str) -> Vec<KeyValue> {
    text.split(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| KeyValue::new(key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Redacts secret attributes (see [`crate::logging::redact`]) on spans and span events
/// before export: log events inside a span become span events, so a `password` field
/// would otherwise reach the trace backend even though the log line hid it.
#[derive(Debug)]
pub struct RedactingProcessor<P> {
    inner: P,
}

impl<P> RedactingProcessor<P> {
    /// Wraps `inner`, which receives the redacted spans.
    pub fn new(inner: P) -> Self {
        RedactingProcessor { inner }
    }
}

fn redact(attributes: &mut [KeyValue]) {
    for kv in attributes.iter_mut() {
        if is_secret_field(kv.key.as_str()) {
            kv.value = REDACTED.into();
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for RedactingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        redact(&mut span.attributes);
        for event in span.events.events.iter_mut() {
            redact(&mut event.attributes);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry::Key;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
    use std::collections::HashMap;

    fn identity() -> Identity {
        Identity {
            service: "journal-server".into(),
            pod: "journal-server-2".into(),
            namespace: "mq".into(),
            node: "n1".into(),
            cluster: "c1".into(),
            version: "0.3.0".into(),
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    fn get(resource: &Resource, key: &'static str) -> Option<String> {
        resource
            .get(&Key::from_static_str(key))
            .map(|v| v.to_string())
    }

    #[test]
    fn resource_from_identity() {
        let r = resource(&identity(), &env(&[]));
        assert_eq!(get(&r, "service.name").as_deref(), Some("journal-server"));
        assert_eq!(get(&r, "service.version").as_deref(), Some("0.3.0"));
        assert_eq!(
            get(&r, "service.instance.id").as_deref(),
            Some("mq.journal-server-2")
        );
        assert_eq!(get(&r, "k8s.pod.name").as_deref(), Some("journal-server-2"));
        assert_eq!(get(&r, "k8s.namespace.name").as_deref(), Some("mq"));
        assert_eq!(get(&r, "k8s.node.name").as_deref(), Some("n1"));
        assert_eq!(get(&r, "telemetry.sdk.language").as_deref(), Some("rust"));
    }

    #[test]
    fn env_overrides_identity() {
        let r = resource(
            &identity(),
            &env(&[
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment.name=prod,k8s.node.name=n%202, bad",
                ),
                ("OTEL_SERVICE_NAME", "journal"),
            ]),
        );
        assert_eq!(get(&r, "service.name").as_deref(), Some("journal"));
        assert_eq!(
            get(&r, "deployment.environment.name").as_deref(),
            Some("prod")
        );
        assert_eq!(get(&r, "k8s.node.name").as_deref(), Some("n 2"));
    }

    #[test]
    fn endpoint_precedence() {
        assert_eq!(
            otlp_endpoint(Some("http://cfg:4317"), &env(&[])).as_deref(),
            Some("http://cfg:4317")
        );
        assert_eq!(
            otlp_endpoint(
                Some("http://cfg:4317"),
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")])
            )
            .as_deref(),
            Some("http://env:4317")
        );
        assert_eq!(
            otlp_endpoint(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            None
        );
        assert_eq!(otlp_endpoint(None, &env(&[])), None);
    }

    #[test]
    fn exporting_outside_a_runtime_is_a_clear_error() {
        let err = tracer_provider(
            Resource::builder_empty().build(),
            Some("http://127.0.0.1:4317"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoRuntime { .. }), "{err}");
    }

    #[test]
    fn secrets_are_redacted_before_export() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(RedactingProcessor::new(SimpleSpanProcessor::new(
                exporter.clone(),
            )))
            .build();
        let tracer = provider.tracer("t");
        tracer.in_span("login", |cx| {
            use opentelemetry::trace::TraceContextExt;
            let span = cx.span();
            span.set_attribute(KeyValue::new("db_password", "hunter2"));
            span.set_attribute(KeyValue::new("user", "bob"));
            span.add_event("log", vec![KeyValue::new("auth_token", "t-1")]);
        });
        let spans = exporter.get_finished_spans().unwrap();
        let attrs: HashMap<_, _> = spans[0]
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(attrs["db_password"], REDACTED);
        assert_eq!(attrs["user"], "bob");
        assert_eq!(
            spans[0].events.events[0].attributes[0].value.to_string(),
            REDACTED
        );
    }
}
