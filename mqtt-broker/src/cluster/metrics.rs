//! What the cluster layer measures: forwarding to peers (messages, drops, batch latency),
//! forwards received and refused, the peers and routes this broker knows.
//!
//! Peers are not labels (node ids are bounded, but a dashboard wants the sum; per-peer
//! detail belongs in traces and logs).

use common_metrics::LatencyHistogram;
use mqtt_codec::QoS;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{counters_by_qos, QosLabels};

/// Why a message did not reach a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ForwardDrop {
    /// The peer's forward queue was full (QoS 0 only; QoS 1/2 wait instead).
    queue_full,
    /// The peer did not accept the batch before the retry deadline.
    peer_failed,
    /// The peer refused our epoch: this process is a stale incarnation.
    stale_epoch,
    /// The peer left the cluster while the message waited.
    peer_gone,
}

impl ForwardDrop {
    const ALL: [ForwardDrop; 4] = [
        ForwardDrop::queue_full,
        ForwardDrop::peer_failed,
        ForwardDrop::stale_epoch,
        ForwardDrop::peer_gone,
    ];
}

/// Why this broker refused a forwarded batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RefuseReason {
    stale_epoch,
    invalid,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    qos: &'static str,
    reason: ForwardDrop,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefuseLabels {
    reason: RefuseReason,
}

/// Every metric of the cluster layer. Per-message counters are resolved once (by QoS,
/// and reason), so counting never hashes labels.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    forwarded: Family<QosLabels, Counter>,
    forwarded_by_qos: [Counter; 3],
    forward_dropped: Family<DropLabels, Counter>,
    drops: [[Counter; ForwardDrop::ALL.len()]; 3],
    /// From sending a batch to a peer to its answer.
    pub forward_batch_latency: LatencyHistogram,
    /// Messages received from peers.
    pub forward_received: Counter,
    /// Messages a peer sent again after a broken stream, which were delivered already.
    pub forward_repeated: Counter,
    /// Messages that found a peer's forward queue full and waited for room.
    pub forward_waited: Counter,
    forward_refused: Family<RefuseLabels, Counter>,
    /// Other brokers currently registered.
    pub peers: Gauge,
    /// Route-table entries known cluster-wide (this node's included).
    pub routes: Gauge,
    /// Route-table writes to the placement center that failed.
    pub route_update_failures: Counter,
}

impl Default for ClusterMetrics {
    /// Unregistered metrics (tests, or a broker that is not clustered).
    fn default() -> Self {
        let forwarded = Family::default();
        let forwarded_by_qos =
            counters_by_qos(&forwarded, [()], |qos, ()| QosLabels { qos }).map(|[counter]| counter);
        let forward_dropped = Family::default();
        let drops = counters_by_qos(&forward_dropped, ForwardDrop::ALL, |qos, reason| {
            DropLabels { qos, reason }
        });
        Self {
            forwarded,
            forwarded_by_qos,
            forward_dropped,
            drops,
            forward_batch_latency: Default::default(),
            forward_received: Default::default(),
            forward_repeated: Default::default(),
            forward_waited: Default::default(),
            forward_refused: Default::default(),
            peers: Default::default(),
            routes: Default::default(),
            route_update_failures: Default::default(),
        }
    }
}

impl ClusterMetrics {
    /// Registers under `registry` (which carries the `robustmq` prefix), as `cluster_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("cluster");
        r.register(
            "forwarded_messages",
            "Messages forwarded to peer brokers (one per peer), by published QoS",
            m.forwarded.clone(),
        );
        r.register(
            "forward_dropped",
            "Messages that did not reach a peer broker, by published QoS and reason",
            m.forward_dropped.clone(),
        );
        r.register_with_unit(
            "forward_batch",
            "Time from sending a batch to a peer broker to its answer",
            Unit::Seconds,
            m.forward_batch_latency.clone(),
        );
        r.register(
            "forward_received_messages",
            "Messages received from peer brokers",
            m.forward_received.clone(),
        );
        r.register(
            "forward_repeated_messages",
            "Messages a peer broker resent after a broken stream that were delivered already (not delivered again)",
            m.forward_repeated.clone(),
        );
        r.register(
            "forward_waited_messages",
            "Messages that found a peer broker's forward queue full and waited for room (QoS 1/2 until there is room, QoS 0 up to forward_qos0_wait_ms); their publishers wait with them",
            m.forward_waited.clone(),
        );
        r.register(
            "forward_refused",
            "Forward batches this broker refused, by reason",
            m.forward_refused.clone(),
        );
        r.register(
            "peers",
            "Other brokers registered in the cluster",
            m.peers.clone(),
        );
        r.register(
            "routes",
            "Route-table entries (filter, node) known cluster-wide",
            m.routes.clone(),
        );
        r.register(
            "route_update_failures",
            "Route-table writes to the placement center that failed",
            m.route_update_failures.clone(),
        );
        m
    }

    pub fn forwarded(&self, qos: QoS) {
        self.forwarded_by_qos[qos as usize].inc();
    }

    pub fn dropped(&self, qos: QoS, reason: ForwardDrop) {
        self.drops[qos as usize][reason as usize].inc();
    }

    pub fn refused(&self, reason: RefuseReason) {
        self.forward_refused
            .get_or_create(&RefuseLabels { reason })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut registry = Registry::default();
        let m = ClusterMetrics::register(registry.sub_registry_with_prefix("robustmq"));
        m.forwarded(QoS::AtLeastOnce);
        m.dropped(QoS::AtMostOnce, ForwardDrop::queue_full);
        m.refused(RefuseReason::stale_epoch);
        m.forward_batch_latency.observe(0.001);
        m.forward_waited.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "robustmq_cluster_forwarded_messages_total{qos=\"1\"} 1",
            "robustmq_cluster_forward_dropped_total{qos=\"0\",reason=\"queue_full\"} 1",
            "robustmq_cluster_forward_refused_total{reason=\"stale_epoch\"} 1",
            "robustmq_cluster_forward_batch_seconds_count 1",
            "robustmq_cluster_peers 0",
            "robustmq_cluster_forward_waited_messages_total 1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
