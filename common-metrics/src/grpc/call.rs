//! One RPC in flight: its span, its start time, and the metrics to record when it ends.

use std::time::Instant;

use super::metrics::{RpcLabels, RpcMetrics};
use super::{code_name, parse_path, CANCELLED, OK, UNIMPLEMENTED};

/// Which end of the call we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// An RPC between its request and its final status. Finishing records the status on the
/// span, the metrics, and ends the span; an unfinished call that is dropped (the peer
/// went away) finishes as `Canceled`.
#[derive(Debug)]
pub(crate) struct RpcCall {
    pub(crate) span: tracing::Span,
    metrics: RpcMetrics,
    labels: RpcLabels,
    side: Side,
    start: Instant,
    finished: bool,
}

/// Service and method of a request path; unparsable paths (not gRPC, or hostile) share
/// one `unknown` label value so they cannot grow the label set without bound.
pub(crate) fn rpc_labels(path: &str) -> RpcLabels {
    let (service, method) = parse_path(path).unwrap_or(("unknown", "unknown"));
    RpcLabels {
        grpc_service: service.to_owned(),
        grpc_method: method.to_owned(),
    }
}

impl RpcCall {
    pub(crate) fn new(
        span: tracing::Span,
        metrics: RpcMetrics,
        labels: RpcLabels,
        side: Side,
    ) -> Self {
        RpcCall {
            span,
            metrics,
            labels,
            side,
            start: Instant::now(),
            finished: false,
        }
    }

    /// Records the final status `code`; later calls do nothing.
    pub(crate) fn finish(&mut self, code: i32) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        self.span.record("rpc.grpc.status_code", i64::from(code));
        if is_error(self.side, code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let labels = if self.side == Side::Server && code == UNIMPLEMENTED {
            // Any path can reach a server; only methods it implements get their own
            // label values.
            rpc_labels("")
        } else {
            self.labels.clone()
        };
        // Inside the span, so the histogram's exemplar is this call's trace.
        let metrics = &self.metrics;
        self.span
            .in_scope(|| metrics.record(labels, code_name(code), seconds));
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

/// OpenTelemetry's RPC conventions: a client span fails on any non-OK status; a server
/// span only on codes that mean the server failed, not the caller.
fn is_error(side: Side, code: i32) -> bool {
    match side {
        Side::Client => code != OK,
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}
