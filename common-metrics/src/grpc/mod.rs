//! Tracing and metrics for tonic, as two tower layers: one on the server, one on the
//! client channel. Adding them is all a service does to join the cross-service trace
//! and get per-method RPC metrics.
//!
//! ```no_run
//! # async fn example(channel: tonic::transport::Channel) {
//! use common_metrics::grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcServerLayer, GrpcServerMetrics};
//! let mut registry = prometheus_client::registry::Registry::default();
//! let root = common_metrics::namespaced(&mut registry);
//! // Server: spans parented on the caller's `traceparent`, robustmq_grpc_server_* metrics.
//! let server = tonic::transport::Server::builder()
//!     .layer(GrpcServerLayer::new(GrpcServerMetrics::register(root)));
//! // Client: injects `traceparent`, robustmq_grpc_client_* metrics.
//! let client_channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new(GrpcClientMetrics::register(root)))
//!     .service(channel);
//! # drop((server, client_channel));
//! # }
//! ```
//!
//! Status codes: a trailers-only response (tonic's way of returning an error status
//! without a body) carries `grpc-status` in its headers and is recorded at once;
//! otherwise the code is read from the trailers when the response body (a unary reply or
//! a whole stream) ends, so a streaming call is measured from request to end of stream.
//! A non-200 HTTP status without `grpc-status` maps per the gRPC HTTP mapping. A body that
//! is dropped before its trailers (the peer went away, a deadline fired) counts as
//! `Canceled`; a body that ends without `grpc-status`, or an error from the inner service,
//! counts as `Unknown` on the server and `Unavailable` on the client (transport failure).

mod body;
mod call;
mod client;
mod metrics;
mod server;

pub use body::{ResponseFuture, RpcBody};
pub use client::{GrpcClientLayer, GrpcClientService};
pub use metrics::{GrpcClientMetrics, GrpcServerMetrics, RpcCodeLabels, RpcLabels};
pub use server::{GrpcServerLayer, GrpcServerService};

/// `grpc-status` 0.
pub(crate) const OK: i32 = 0;
/// `grpc-status` 1.
pub(crate) const CANCELLED: i32 = 1;
/// `grpc-status` 2.
pub(crate) const UNKNOWN: i32 = 2;
/// `grpc-status` 12.
pub(crate) const UNIMPLEMENTED: i32 = 12;
/// `grpc-status` 14.
pub(crate) const UNAVAILABLE: i32 = 14;

/// The canonical name of a gRPC status code, as go-grpc-prometheus writes it in
/// `grpc_code` (so dashboards built for it work unchanged).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// Splits a gRPC path `/pkg.Service/Method` into service and method.
pub(crate) fn parse_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The status code in `grpc-status`, if present and numeric.
pub(crate) fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The gRPC code for an HTTP response that carries no `grpc-status` (gRPC's
/// "HTTP to gRPC status code mapping").
pub(crate) fn http_to_grpc(status: http::StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502..=504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_codes() {
        assert_eq!(
            parse_path("/robustmq.journal.Journal/Append"),
            Some(("robustmq.journal.Journal", "Append"))
        );
        for bad in ["", "/", "/svc", "/svc/", "//m", "/a/b/c", "svc/m"] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(14), "Unavailable");
        assert_eq!(code_name(99), "Unknown");
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&headers), Some(5));
        assert_eq!(http_to_grpc(http::StatusCode::NOT_FOUND), UNIMPLEMENTED);
        assert_eq!(
            http_to_grpc(http::StatusCode::SERVICE_UNAVAILABLE),
            UNAVAILABLE
        );
    }
}
