//! Client side: open a client span under the current span, inject its context as
//! `traceparent`/`tracestate` into the request headers (gRPC metadata), record
//! `grpc_client_*` metrics.

use std::task::{Context, Poll};

use opentelemetry::trace::TraceContextExt;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::body::{ResponseFuture, RpcBody};
use super::call::{rpc_labels, RpcCall, Side};
use super::metrics::GrpcClientMetrics;
use super::UNAVAILABLE;
use crate::propagation::inject_into_headers;

/// Tower layer around a `tonic::transport::Channel`.
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    metrics: GrpcClientMetrics,
}

impl GrpcClientLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: GrpcClientMetrics) -> Self {
        GrpcClientLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcClientLayer`] wraps around a channel; pass it to a generated
/// client's `new`.
#[derive(Clone, Debug)]
pub struct GrpcClientService<S> {
    inner: S,
    metrics: GrpcClientMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<RpcBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let labels = rpc_labels(request.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %format_args!("{}/{}", labels.grpc_service, labels.grpc_method),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %labels.grpc_service,
            rpc.method = %labels.grpc_method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        // Starts the client span (child of the current span) so its ids exist now. When
        // no OpenTelemetry layer is installed, forward whatever context is attached (e.g.
        // a message's creation context) rather than nothing.
        let cx = span.context();
        let cx = if cx.span().span_context().is_valid() {
            cx
        } else {
            opentelemetry::Context::current()
        };
        inject_into_headers(&cx, request.headers_mut());
        let call = RpcCall::new(span, self.metrics.0.clone(), labels, Side::Client);
        let future = {
            let _entered = call.span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, call, UNAVAILABLE)
    }
}
