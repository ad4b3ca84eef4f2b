//! Trace propagation and RPC metrics across a real tonic client and server on loopback.
//!
//! The test service is the OTLP trace service from `opentelemetry-proto`, which saves a
//! proto of our own. Everything runs on the test's current-thread runtime, so the span
//! capture (installed for this thread) sees the client, the server and the handler.

use std::net::SocketAddr;

use common_metrics::exposition::Format;
use common_metrics::grpc::{
    GrpcClientLayer, GrpcClientMetrics, GrpcServerLayer, GrpcServerMetrics,
};
use common_metrics::namespaced;
use common_metrics::testing::{attribute, capture_spans, find, parse_metrics, SpanCapture};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::trace::SpanData;
use prometheus_client::registry::Registry;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tracing::Instrument;

const EXPORT: &str = "opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Answers every export, inside a `handler` span of its own.
struct Handler;

#[tonic::async_trait]
impl TraceService for Handler {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        tracing::info_span!("handler").in_scope(|| tracing::info!("exporting"));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A traced server and a registry holding both sides' metrics.
struct Fixture {
    addr: SocketAddr,
    registry: Registry,
    client_metrics: GrpcClientMetrics,
}

async fn start() -> anyhow::Result<Fixture> {
    let mut registry = Registry::default();
    let server_metrics = GrpcServerMetrics::register(namespaced(&mut registry));
    let client_metrics = GrpcClientMetrics::register(namespaced(&mut registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .layer(GrpcServerLayer::new(server_metrics))
            .add_service(TraceServiceServer::new(Handler))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok(Fixture {
        addr,
        registry,
        client_metrics,
    })
}

async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// What a Prometheus scrape gets (OpenMetrics, with exemplars).
fn metrics_text(registry: &Registry) -> String {
    common_metrics::exposition::encode_registry(registry, Format::OpenMetrics).unwrap()
}

fn by_kind(capture: &SpanCapture, kind: SpanKind) -> SpanData {
    capture
        .spans()
        .into_iter()
        .find(|s| s.name == EXPORT && s.span_kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} span in {:#?}", capture.spans()))
}

#[tokio::test]
async fn server_span_is_child_of_client_span() -> anyhow::Result<()> {
    let capture = capture_spans();
    let fixture = start().await?;
    let traced = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(fixture.client_metrics.clone()))
        .service(channel(fixture.addr).await?);
    let mut client = TraceServiceClient::new(traced);

    let publish = tracing::info_span!("mqtt.publish");
    client
        .export(ExportTraceServiceRequest::default())
        .instrument(publish.clone())
        .await?;
    drop(publish);

    let client_span = by_kind(&capture, SpanKind::Client);
    let server_span = by_kind(&capture, SpanKind::Server);
    let publish = capture.span("mqtt.publish").expect("publish span");
    let handler = capture.span("handler").expect("handler span");
    let trace_id = publish.span_context.trace_id();

    assert_eq!(client_span.parent_span_id, publish.span_context.span_id());
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert!(server_span.parent_span_is_remote);
    assert_eq!(handler.parent_span_id, server_span.span_context.span_id());
    for span in [&client_span, &server_span, &handler] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    for span in [&client_span, &server_span] {
        assert_eq!(attribute(span, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attribute(span, "rpc.service").as_deref(),
            Some("opentelemetry.proto.collector.trace.v1.TraceService")
        );
        assert_eq!(attribute(span, "rpc.method").as_deref(), Some("Export"));
        assert_eq!(
            attribute(span, "rpc.grpc.status_code").as_deref(),
            Some("0")
        );
    }
    // The handler's log line carries the trace of the whole call.
    let line = capture
        .log_lines()
        .into_iter()
        .find(|l| l.contains("exporting"))
        .expect("handler log line");
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "{line}"
    );

    let samples = parse_metrics(&metrics_text(&fixture.registry));
    let ok = [
        (
            "grpc_service",
            "opentelemetry.proto.collector.trace.v1.TraceService",
        ),
        ("grpc_method", "Export"),
        ("grpc_code", "OK"),
    ];
    assert_eq!(
        find(&samples, "robustmq_grpc_server_handled_total", &ok),
        Some(1.0)
    );
    assert_eq!(
        find(&samples, "robustmq_grpc_client_handled_total", &ok),
        Some(1.0)
    );
    let method = &ok[..2];
    assert_eq!(
        find(
            &samples,
            "robustmq_grpc_server_handling_seconds_count",
            method
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &samples,
            "robustmq_grpc_client_handling_seconds_count",
            method
        ),
        Some(1.0)
    );
    // The latency exemplar points at the call's trace.
    let exemplar_trace = samples
        .iter()
        .filter(|s| s.name == "robustmq_grpc_server_handling_seconds_bucket")
        .find_map(|s| s.exemplar.as_ref())
        .map(|e| e.labels["trace_id"].clone());
    assert_eq!(exemplar_trace, Some(trace_id.to_string()));
    Ok(())
}

#[tokio::test]
async fn no_incoming_context_starts_a_new_root() -> anyhow::Result<()> {
    let capture = capture_spans();
    let fixture = start().await?;
    let mut client = TraceServiceClient::new(channel(fixture.addr).await?);
    // A span on the caller's side that the (untraced) client does not propagate.
    let caller = tracing::info_span!("caller");
    client
        .export(ExportTraceServiceRequest::default())
        .instrument(caller.clone())
        .await?;
    drop(caller);

    let server_span = by_kind(&capture, SpanKind::Server);
    let caller = capture.span("caller").expect("caller span");
    assert_eq!(server_span.parent_span_id, SpanId::INVALID);
    assert_ne!(
        server_span.span_context.trace_id(),
        caller.span_context.trace_id()
    );
    Ok(())
}

#[tokio::test]
async fn malformed_traceparent_is_ignored() -> anyhow::Result<()> {
    let capture = capture_spans();
    let fixture = start().await?;
    let mut client = TraceServiceClient::new(channel(fixture.addr).await?);
    for bad in [
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    ] {
        let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
        request.metadata_mut().insert("traceparent", bad.parse()?);
        request.metadata_mut().insert("tracestate", "=,=".parse()?);
        client.export(request).await?;
    }

    let servers: Vec<SpanData> = capture
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2);
    for span in servers {
        assert_eq!(span.parent_span_id, SpanId::INVALID);
        assert_ne!(
            span.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")?
        );
        assert_eq!(
            attribute(&span, "rpc.grpc.status_code").as_deref(),
            Some("0")
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_methods_share_one_label_set() -> anyhow::Result<()> {
    let _capture = capture_spans();
    let fixture = start().await?;
    let traced = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(fixture.client_metrics.clone()))
        .service(channel(fixture.addr).await?);
    let mut grpc = tonic::client::Grpc::new(traced);
    grpc.ready().await?;
    let status = grpc
        .unary::<ExportTraceServiceRequest, ExportTraceServiceResponse, _>(
            tonic::Request::new(ExportTraceServiceRequest::default()),
            http::uri::PathAndQuery::from_static("/scanner.Probe/Random123"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    let samples = parse_metrics(&metrics_text(&fixture.registry));
    let server = [
        ("grpc_service", "unknown"),
        ("grpc_method", "unknown"),
        ("grpc_code", "Unimplemented"),
    ];
    assert_eq!(
        find(&samples, "robustmq_grpc_server_handled_total", &server),
        Some(1.0)
    );
    let client = [
        ("grpc_service", "scanner.Probe"),
        ("grpc_method", "Random123"),
        ("grpc_code", "Unimplemented"),
    ];
    assert_eq!(
        find(&samples, "robustmq_grpc_client_handled_total", &client),
        Some(1.0)
    );
    assert!(!samples
        .iter()
        .any(|s| s.name.starts_with("robustmq_grpc_server")
            && s.labels.get("grpc_method").map(String::as_str) == Some("Random123")));
    Ok(())
}
