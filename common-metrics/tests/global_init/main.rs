//! `init` installs the process-wide subscriber, which can happen once per process, so
//! this binary holds exactly one test and owns the global state.
//!
//! It checks that spans reach a real OTLP/gRPC receiver (a tonic server implementing the
//! OTLP trace service on loopback) with the identity as resource attributes, secrets
//! redacted, and that a second `init` is an error rather than a silent no-op.

use std::time::Duration;

use common_metrics::{init_with_env, Error, Identity, LogFormat, TelemetryConfig};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Forwards every export request to the test.
struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn string_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

// Multi-thread: the exporter's batch thread blocks on export futures whose I/O runs on
// the runtime, and the guard's shutdown blocks until the last batch is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_reaches_a_real_receiver() -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let identity = Identity {
        service: "placement-center".into(),
        pod: "placement-center-1".into(),
        namespace: "robustmq".into(),
        node: "kind-worker2".into(),
        cluster: "kind".into(),
        version: "0.1.0-test".into(),
    };
    let config = TelemetryConfig {
        log_format: LogFormat::Json,
        // Quiet logs must not silence traces: the span filter is separate.
        log_filter: Some("warn".into()),
        otlp_endpoint: Some(format!("http://{addr}")),
        ..TelemetryConfig::default()
    };
    // The endpoint comes from the config; only these variables are "set".
    let env = |key: &str| match key {
        "OTEL_RESOURCE_ATTRIBUTES" => Some("deployment.environment.name=ci".to_owned()),
        _ => None,
    };
    let guard = init_with_env(&identity, &config, env)?;
    assert!(guard.is_exporting());

    let span = tracing::info_span!("raft.append", password = "hunter2", entries = 3);
    let trace_id = span.context().span().span_context().trace_id();
    span.in_scope(|| tracing::info_span!("rocksdb.write").in_scope(|| {}));
    drop(span);

    let second = init_with_env(&identity, &TelemetryConfig::default(), |_| None);
    assert!(
        matches!(second, Err(Error::AlreadyInitialized(_))),
        "{second:?}"
    );

    // Shutdown flushes the batch queue; it blocks, so run it off the async threads.
    tokio::task::spawn_blocking(move || guard.shutdown()).await?;

    let mut spans = Vec::new();
    let mut resource = None;
    while spans.len() < 2 {
        let request = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("receiver closed"))?;
        for rs in request.resource_spans {
            resource = rs.resource.clone().or(resource);
            spans.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
        }
    }

    let resource = resource.expect("resource sent");
    let attrs = &resource.attributes;
    assert_eq!(string_attr(attrs, "service.name"), Some("placement-center"));
    assert_eq!(string_attr(attrs, "service.version"), Some("0.1.0-test"));
    assert_eq!(
        string_attr(attrs, "service.instance.id"),
        Some("robustmq.placement-center-1")
    );
    assert_eq!(
        string_attr(attrs, "k8s.pod.name"),
        Some("placement-center-1")
    );
    assert_eq!(string_attr(attrs, "k8s.namespace.name"), Some("robustmq"));
    assert_eq!(string_attr(attrs, "k8s.node.name"), Some("kind-worker2"));
    assert_eq!(
        string_attr(attrs, "deployment.environment.name"),
        Some("ci")
    );

    let append = spans
        .iter()
        .find(|s| s.name == "raft.append")
        .expect("raft.append exported");
    let write = spans
        .iter()
        .find(|s| s.name == "rocksdb.write")
        .expect("rocksdb.write exported");
    assert_eq!(append.trace_id, trace_id.to_bytes().to_vec());
    assert_eq!(write.trace_id, append.trace_id);
    assert_eq!(write.parent_span_id, append.span_id);
    assert_eq!(
        string_attr(&append.attributes, "password"),
        Some("[redacted]")
    );
    Ok(())
}
