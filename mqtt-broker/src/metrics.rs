//! The broker's metrics, registered beside the code that records them.
//!
//! Label sets are small and bounded (packet type, listener, protocol version, QoS,
//! reason); client ids and topics are never labels. Per-connection handles are resolved
//! once when the connection is accepted ([`ConnectionMetrics`]), so the hot path only
//! increments atomics.

use std::sync::atomic::{AtomicI64, Ordering};

use common_metrics::{latency_family, LatencyBatch, LatencyFamily, LatencyHistogram};
use mqtt_codec::{PacketKind, ProtocolVersion, QoS};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::config::ListenerProtocol;

/// Why a message was not delivered to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DropReason {
    /// No subscription matched the topic.
    no_subscribers,
    /// The session's queue was full.
    queue_full,
    /// QoS 0 for an offline session.
    offline,
    /// The message expiry interval passed before delivery.
    expired,
    /// Larger than the subscriber's Maximum Packet Size.
    too_large,
    /// The publisher was not authorised.
    acl_denied,
}

impl DropReason {
    const ALL: [DropReason; 6] = [
        DropReason::no_subscribers,
        DropReason::queue_full,
        DropReason::offline,
        DropReason::expired,
        DropReason::too_large,
        DropReason::acl_denied,
    ];
}

/// The QoS levels, in label order.
const QOS_LEVELS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// One counter of `family` per QoS level and reason, resolved once, so that counting is
/// an index rather than a hash of the labels (drops come by the million under overload).
pub(crate) fn counters_by_qos<L, R: Copy, const N: usize>(
    family: &Family<L, Counter>,
    reasons: [R; N],
    labels: impl Fn(&'static str, R) -> L,
) -> [[Counter; N]; 3]
where
    L: Clone + std::hash::Hash + Eq,
{
    std::array::from_fn(|q| {
        std::array::from_fn(|r| {
            family
                .get_or_create(&labels(QOS_LEVELS[q].as_str(), reasons[r]))
                .clone()
        })
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PacketLabels {
    packet_type: &'static str,
    listener: &'static str,
    version: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

/// One label: the QoS of a message (shared with the cluster layer's metrics).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QosLabels {
    pub(crate) qos: &'static str,
}

/// A delivery's QoS and whether its message was published on this broker (`local`) or
/// came from another one (`remote`: forwarded, handed over, read back from a log).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    qos: &'static str,
    path: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    qos: &'static str,
    reason: DropReason,
}

/// A client request the broker failed for a reason of its own (the availability SLI's
/// bad events): a CONNECT refused because the cluster could not claim the session, a
/// QoS 1/2 PUBLISH whose message could not be made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Operation {
    connect,
    publish,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every metric the broker records.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    pub connections_active: Gauge,
    /// Highest `connections_active` since start.
    pub connections_peak: Gauge,
    connections_opened: Family<ListenerLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    packets_received: Family<PacketLabels, Counter>,
    packets_sent: Family<PacketLabels, Counter>,
    bytes_received: Family<ListenerLabels, Counter>,
    bytes_sent: Family<ListenerLabels, Counter>,
    packets_received_error: Family<ReasonLabels, Counter>,
    messages_received: Family<QosLabels, Counter>,
    messages_delivered: Family<QosLabels, Counter>,
    messages_dropped: Family<DropLabels, Counter>,
    /// `messages_dropped` by QoS and [`DropReason`], resolved once.
    drops: [[Counter; DropReason::ALL.len()]; 3],
    pub auth_failures: Counter,
    /// By [`Operation`], resolved once (both exist from the start, so the SLI's ratio
    /// has a numerator before the first failure).
    server_errors: [Counter; 2],
    pub will_published: Counter,
    pub sessions: Gauge,
    pub subscriptions: Gauge,
    /// PUBLISH packets that used a topic alias, `in` (from clients) and `out` (to them).
    topic_alias_used: Family<DirectionLabels, Counter>,
    pub retained: Gauge,
    /// PUBLISH read from the publisher → written for one subscriber, with trace exemplars.
    message_latency: LatencyFamily<LatencyLabels>,
    publish_ack_latency: LatencyFamily<QosLabels>,
    /// CONNECT read → CONNACK queued, authentication and the session claim included.
    pub connect_latency: LatencyHistogram,
    peak: std::sync::Arc<AtomicI64>,
    /// False with `telemetry.metrics_enabled = false`: nothing is exported, and the
    /// per-message counters and latency histograms are not touched (connection and
    /// session figures, which change per connection, still are).
    pub recording: bool,
}

impl BrokerMetrics {
    /// Registers the broker's metrics in `registry` (which carries the `robustmq` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let messages_dropped = Family::default();
        let drops = counters_by_qos(&messages_dropped, DropReason::ALL, |qos, reason| {
            DropLabels { qos, reason }
        });
        let server_errors_family = Family::<OperationLabels, Counter>::default();
        let server_errors = [Operation::connect, Operation::publish].map(|operation| {
            server_errors_family
                .get_or_create(&OperationLabels { operation })
                .clone()
        });
        let m = Self {
            connections_active: Gauge::default(),
            connections_peak: Gauge::default(),
            connections_opened: Family::default(),
            connections_closed: Family::default(),
            packets_received: Family::default(),
            packets_sent: Family::default(),
            bytes_received: Family::default(),
            bytes_sent: Family::default(),
            packets_received_error: Family::default(),
            messages_received: Family::default(),
            messages_delivered: Family::default(),
            messages_dropped,
            drops,
            auth_failures: Counter::default(),
            server_errors,
            will_published: Counter::default(),
            sessions: Gauge::default(),
            subscriptions: Gauge::default(),
            topic_alias_used: Family::default(),
            retained: Gauge::default(),
            message_latency: latency_family(),
            publish_ack_latency: latency_family(),
            connect_latency: LatencyHistogram::new(),
            peak: Default::default(),
            recording: true,
        };
        let r = registry;
        r.register(
            "connections_active",
            "Open MQTT connections",
            m.connections_active.clone(),
        );
        r.register(
            "connections_peak",
            "Highest number of open connections since start",
            m.connections_peak.clone(),
        );
        r.register(
            "connections_opened",
            "Connections accepted, by listener",
            m.connections_opened.clone(),
        );
        r.register(
            "connections_closed",
            "Connections closed, by reason",
            m.connections_closed.clone(),
        );
        r.register(
            "packets_received",
            "MQTT packets received, by type, listener and protocol version",
            m.packets_received.clone(),
        );
        r.register(
            "packets_sent",
            "MQTT packets sent, by type, listener and protocol version",
            m.packets_sent.clone(),
        );
        r.register(
            "bytes_received",
            "Bytes received from clients, by listener",
            m.bytes_received.clone(),
        );
        r.register(
            "bytes_sent",
            "Bytes sent to clients, by listener",
            m.bytes_sent.clone(),
        );
        r.register(
            "packets_received_error",
            "Bad packets and refused operations, by reason",
            m.packets_received_error.clone(),
        );
        r.register(
            "messages_received",
            "PUBLISH messages received from clients, by QoS",
            m.messages_received.clone(),
        );
        r.register(
            "messages_delivered",
            "Messages written to subscribers, by delivered QoS",
            m.messages_delivered.clone(),
        );
        r.register(
            "messages_dropped",
            "Messages not delivered to a subscriber, by QoS and reason",
            m.messages_dropped.clone(),
        );
        r.register(
            "auth_failures",
            "CONNECTs refused for bad credentials or authorisation",
            m.auth_failures.clone(),
        );
        r.register(
            "server_errors",
            "Client requests the broker failed for a reason of its own, by operation (CONNECT: the session could not be claimed; PUBLISH: the message could not be made durable)",
            server_errors_family,
        );
        r.register(
            "will_messages_published",
            "Will messages published",
            m.will_published.clone(),
        );
        r.register(
            "sessions",
            "Sessions held, online and offline",
            m.sessions.clone(),
        );
        r.register(
            "subscriptions",
            "Subscriptions held",
            m.subscriptions.clone(),
        );
        r.register(
            "retained_messages",
            "Retained messages held",
            m.retained.clone(),
        );
        r.register(
            "topic_alias_used",
            "PUBLISH packets that carried a topic alias: in (sent by clients), out (sent to them)",
            m.topic_alias_used.clone(),
        );
        r.register_with_unit(
            "message_latency",
            "PUBLISH read from the publisher to written to a subscriber, by delivered QoS and path (local: published on this broker; remote: came from another broker); live deliveries only, not retained messages sent at subscribe time",
            Unit::Seconds,
            m.message_latency.clone(),
        );
        r.register_with_unit(
            "publish_ack",
            "QoS 1/2 PUBLISH read to its PUBACK/PUBREC queued for the publisher, by QoS (with durability: the journal and the peers' answers included)",
            Unit::Seconds,
            m.publish_ack_latency.clone(),
        );
        r.register_with_unit(
            "connect",
            "CONNECT read to its successful CONNACK queued, authentication and the cluster session claim included",
            Unit::Seconds,
            m.connect_latency.clone(),
        );
        m
    }

    /// Resolves the per-connection handles once, when the listener and version are known.
    pub fn connection(
        &self,
        listener: ListenerProtocol,
        version: ProtocolVersion,
    ) -> ConnectionMetrics {
        let listener = listener.as_str();
        let version = version.as_str();
        let by_kind = |family: &Family<PacketLabels, Counter>| {
            PacketKind::ALL.map(|kind| {
                family
                    .get_or_create(&PacketLabels {
                        packet_type: kind.as_str(),
                        listener,
                        version,
                    })
                    .clone()
            })
        };
        let qos = |family: &Family<QosLabels, Counter>| {
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
                .map(|q| family.get_or_create(&QosLabels { qos: q.as_str() }).clone())
        };
        // One call per label value: a family's read guard lives until the end of the
        // statement that took it, and a second get_or_create of a new value in that
        // statement would wait for the write lock forever.
        let alias = |direction| {
            self.topic_alias_used
                .get_or_create(&DirectionLabels { direction })
                .clone()
        };
        ConnectionMetrics {
            recording: self.recording,
            received: by_kind(&self.packets_received),
            sent: by_kind(&self.packets_sent),
            bytes_received: self
                .bytes_received
                .get_or_create(&ListenerLabels { listener })
                .clone(),
            bytes_sent: self
                .bytes_sent
                .get_or_create(&ListenerLabels { listener })
                .clone(),
            alias_in: alias("in"),
            alias_out: alias("out"),
            messages_received: qos(&self.messages_received),
            messages_delivered: qos(&self.messages_delivered),
            latency: ["local", "remote"].map(|path| {
                QOS_LEVELS.map(|q| {
                    LatencyBatch::new(
                        self.message_latency
                            .get_or_create(&LatencyLabels {
                                qos: q.as_str(),
                                path,
                            })
                            .clone(),
                    )
                })
            }),
            ack_latency: [QoS::AtLeastOnce, QoS::ExactlyOnce].map(|q| {
                self.publish_ack_latency
                    .get_or_create(&QosLabels { qos: q.as_str() })
                    .clone()
            }),
        }
    }

    /// Counts an accepted connection.
    pub fn connection_opened(&self, listener: ListenerProtocol) {
        self.connections_opened
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .inc();
        let now = self.connections_active.inc() + 1;
        if now > self.peak.fetch_max(now, Ordering::Relaxed) {
            self.connections_peak.set(now);
        }
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_active.dec();
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a bad packet or refused operation.
    pub fn packet_error(&self, reason: &'static str) {
        self.packets_received_error
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a request failed by the broker itself (not by the client's fault).
    pub fn server_error(&self, operation: Operation) {
        self.server_errors[operation as usize].inc();
    }

    /// Counts a message not delivered to a subscriber.
    pub fn dropped(&self, qos: QoS, reason: DropReason) {
        self.drops[qos as usize][reason as usize].inc();
    }
}

/// Handles resolved once per connection.
#[derive(Debug)]
pub struct ConnectionMetrics {
    /// See [`BrokerMetrics::recording`].
    recording: bool,
    received: [Counter; 15],
    sent: [Counter; 15],
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    /// PUBLISH packets with a topic alias, from the client and to it.
    pub alias_in: Counter,
    pub alias_out: Counter,
    messages_received: [Counter; 3],
    messages_delivered: [Counter; 3],
    /// By path (local, remote) and QoS; untraced deliveries are gathered per batch
    /// written ([`ConnectionMetrics::deliveries_written`]).
    latency: [[LatencyBatch; 3]; 2],
    /// QoS 1 and QoS 2.
    ack_latency: [LatencyHistogram; 2],
}

impl ConnectionMetrics {
    pub fn packet_received(&self, kind: PacketKind) {
        if self.recording {
            self.received[kind.index()].inc();
        }
    }

    pub fn packet_sent(&self, kind: PacketKind) {
        if self.recording {
            self.sent[kind.index()].inc();
        }
    }

    /// Observes the time from reading a QoS 1/2 PUBLISH to queueing its acknowledgement.
    pub fn publish_acknowledged(&self, qos: QoS, read_at: std::time::Instant) {
        if qos != QoS::AtMostOnce && self.recording {
            self.ack_latency[qos as usize - 1].observe_duration(read_at);
        }
    }

    pub fn message_received(&self, qos: QoS) {
        if self.recording {
            self.messages_received[qos as usize].inc();
        }
    }

    /// Counts `n` PUBLISH packets of `qos` written to the client: deliveries, counted
    /// once per batch written rather than once per message.
    pub fn messages_delivered(&self, qos: QoS, n: u64) {
        if self.recording && n > 0 {
            self.sent[PacketKind::Publish.index()].inc_by(n);
            self.messages_delivered[qos as usize].inc_by(n);
        }
    }

    /// Observes a delivery's latency since the PUBLISH was read; a traced delivery
    /// (`trace`: its span) is the exemplar that links the latency to its trace.
    pub fn delivery_latency(
        &mut self,
        qos: QoS,
        remote: bool,
        latency_secs: f64,
        trace: Option<&opentelemetry::Context>,
    ) {
        if !self.recording {
            return;
        }
        let batch = &mut self.latency[usize::from(remote)][qos as usize];
        match trace {
            Some(cx) => batch.histogram().observe_in(latency_secs, cx),
            // The message's own trace is the only right exemplar; whatever span is
            // current here is not it.
            None => batch.observe(latency_secs),
        }
    }

    /// Adds the latencies gathered since the last call to the histograms: once per
    /// batch of deliveries written, so the per-delivery cost stays off shared state.
    pub fn deliveries_written(&mut self) {
        for batch in self.latency.iter_mut().flatten() {
            batch.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolving a connection's handles takes every label value of a family in turn; a
    /// read guard held across two of them would deadlock (it did, for topic aliases).
    #[test]
    fn connection_handles_resolve_without_deadlock() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let metrics = BrokerMetrics::register(&mut Registry::default());
            for _ in 0..2 {
                let c = metrics.connection(ListenerProtocol::Tcp, ProtocolVersion::V5);
                c.alias_in.inc();
                c.alias_out.inc();
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("connection() returned");
    }
}
