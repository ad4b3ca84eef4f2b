//! Server side: extract the caller's trace context from the request headers, run the
//! handler in a server span parented on it, record `grpc_server_*` metrics.

use std::task::{Context, Poll};

use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::body::{ResponseFuture, RpcBody};
use super::call::{rpc_labels, RpcCall, Side};
use super::metrics::GrpcServerMetrics;
use super::UNKNOWN;
use crate::propagation::extract_from_headers;

/// Tower layer for `tonic::transport::Server::builder().layer(..)`.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    metrics: GrpcServerMetrics,
}

impl GrpcServerLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: GrpcServerMetrics) -> Self {
        GrpcServerLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcServerLayer`] wraps around the tonic router.
#[derive(Clone, Debug)]
pub struct GrpcServerService<S> {
    inner: S,
    metrics: GrpcServerMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServerService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<RpcBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let labels = rpc_labels(request.uri().path());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format_args!("{}/{}", labels.grpc_service, labels.grpc_method),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %labels.grpc_service,
            rpc.method = %labels.grpc_method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        // The caller's context, or an empty one (a new root trace) when the headers carry
        // none or a malformed one; never the span that happens to be current here.
        // Without an OpenTelemetry layer there is nothing to parent, hence the `let _`.
        let _ = span.set_parent(extract_from_headers(request.headers()));
        let call = RpcCall::new(span, self.metrics.0.clone(), labels, Side::Server);
        let future = {
            let _entered = call.span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, call, UNKNOWN)
    }
}
