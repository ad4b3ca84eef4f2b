//! The broker's domain message: what the router, sessions and retained store carry.
//!
//! Wire packets become a [`Message`] at the connection boundary, so protocol-version
//! differences never reach routing. A message is shared (`Arc`) by every subscriber it
//! is delivered to; the payload is a `Bytes` slice of the publisher's read buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{ByteString, QoS, UserProperties};

use crate::message_trace::{MessageSpan, MessageTrace};

/// An application message, as published.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    /// The RETAIN flag as published (needed for Retain As Published).
    pub retain: bool,
    pub properties: MessageProperties,
    /// Client id of the publisher, for No Local; empty for broker-originated messages.
    pub publisher: ByteString,
    /// When the broker read the PUBLISH, for latency metrics.
    pub received_at: Instant,
    /// Arrived from another broker (forwarded, handed over or read back from a session
    /// log) rather than read from a client here: the `path="remote"` latency samples.
    pub remote: bool,
    /// The span this message's deliveries and forwards are children of, when it is
    /// traced (see [`crate::message_trace`]).
    pub trace: MessageTrace,
}

/// The MQTT 5 properties that travel with a message to its subscribers.
#[derive(Debug, Clone, Default)]
pub struct MessageProperties {
    pub payload_format_indicator: Option<u8>,
    /// When the message expires (from Message Expiry Interval).
    pub expires_at: Option<Instant>,
    pub content_type: Option<ByteString>,
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: UserProperties,
}

impl Message {
    /// True once the message expiry interval has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.properties.expires_at.is_some_and(|at| at <= now)
    }

    /// Seconds left before expiry, rounded up, for the forwarded Message Expiry Interval.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.properties.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// One message on its way to one session: the shared message plus what the matching
/// subscription decided for this subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// min(published QoS, subscription QoS).
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers of every matching subscription (MQTT 5).
    pub subscription_ids: Vec<u32>,
    /// The `mqtt.deliver` span of a traced message; it ends when the delivery is written
    /// to the client or dropped. Not kept for resends.
    pub span: Option<Arc<MessageSpan>>,
    /// Its `Enqueued` record in this broker's session log (a QoS 1/2 delivery to a
    /// persistent session, with durability on); acknowledging it writes `Done`.
    pub durable: Option<crate::cluster::durable::DurableId>,
    /// A retained message sent because of a new subscription, not a live delivery: its
    /// age is not a delivery latency and is not observed as one.
    pub replay: bool,
}

/// A will message, held by the connection until it is published or discarded.
#[derive(Debug, Clone)]
pub struct Will {
    pub message: Message,
    /// MQTT 5 Will Delay Interval.
    pub delay: Duration,
    /// MQTT 5 Message Expiry Interval, counted from when the will is published.
    pub expiry_interval: Option<u32>,
    /// The username the client logged in with: the will is authorised as that client.
    pub username: Option<ByteString>,
}
