//! gRPC metric families, named as go-grpc-prometheus names them so existing dashboards
//! and alerts apply: `grpc_{server,client}_handled_total{grpc_service,grpc_method,grpc_code}`
//! and `grpc_{server,client}_handling_seconds{grpc_service,grpc_method}` (with trace
//! exemplars). Registered relative to the registry passed in: under
//! [`crate::namespaced`] they become `robustmq_grpc_…`, following our namespace rule.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

use crate::histogram::{latency_family, LatencyFamily};

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// Fully qualified service, e.g. `robustmq.journal.Journal`.
    pub grpc_service: String,
    /// Method name, e.g. `Append`.
    pub grpc_method: String,
}

/// Labels of the handled counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    /// Fully qualified service.
    pub grpc_service: String,
    /// Method name.
    pub grpc_method: String,
    /// Status code name (`OK`, `NotFound`, …).
    pub grpc_code: &'static str,
}

/// The two families one side (server or client) records.
#[derive(Clone, Debug)]
pub(crate) struct RpcMetrics {
    pub(crate) handled: Family<RpcCodeLabels, Counter>,
    pub(crate) handling: LatencyFamily<RpcLabels>,
}

impl RpcMetrics {
    fn register(registry: &mut Registry, side: &str) -> Self {
        let metrics = RpcMetrics {
            handled: Family::default(),
            handling: latency_family(),
        };
        registry.register(
            format!("grpc_{side}_handled"),
            format!(
                "Total number of RPCs completed on the {side}, regardless of success or failure"
            ),
            metrics.handled.clone(),
        );
        registry.register_with_unit(
            format!("grpc_{side}_handling"),
            format!(
                "Response latency of RPCs handled by the {side}, to the end of the response stream"
            ),
            Unit::Seconds,
            metrics.handling.clone(),
        );
        metrics
    }

    /// Records one finished call.
    pub(crate) fn record(&self, labels: RpcLabels, code: &'static str, seconds: f64) {
        self.handling.get_or_create(&labels).observe(seconds);
        self.handled
            .get_or_create(&RpcCodeLabels {
                grpc_service: labels.grpc_service,
                grpc_method: labels.grpc_method,
                grpc_code: code,
            })
            .inc();
    }
}

/// Server-side gRPC metrics, for [`super::GrpcServerLayer`].
#[derive(Clone, Debug)]
pub struct GrpcServerMetrics(pub(crate) RpcMetrics);

impl GrpcServerMetrics {
    /// Registers `grpc_server_handled_total` and `grpc_server_handling_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        GrpcServerMetrics(RpcMetrics::register(registry, "server"))
    }
}

/// Client-side gRPC metrics, for [`super::GrpcClientLayer`].
#[derive(Clone, Debug)]
pub struct GrpcClientMetrics(pub(crate) RpcMetrics);

impl GrpcClientMetrics {
    /// Registers `grpc_client_handled_total` and `grpc_client_handling_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        GrpcClientMetrics(RpcMetrics::register(registry, "client"))
    }
}
