//! Messages to and from their protobuf form, for forwarding to peers and for retained
//! records in the placement center.
//!
//! A message's instants (`received_at`, `expires_at`) mean nothing in another process, so
//! they travel as wall-clock time and a remaining lifetime, and are turned back into this
//! process's instants on arrival.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_codec::{ByteString, QoS};
use robustmq_proto::broker as pb;

use crate::message::{Message, MessageProperties};
use crate::router::SharedKey;

/// One reading of both clocks, taken once per batch rather than once per message.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub instant: Instant,
    /// Wall-clock time at `instant`, as Unix nanoseconds.
    pub unix_nanos: u64,
}

impl Clock {
    pub fn now() -> Self {
        Self::at(Instant::now())
    }

    /// `instant` (taken just now) with the wall clock read beside it.
    pub fn at(instant: Instant) -> Self {
        let unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            instant,
            unix_nanos,
        }
    }
}

/// A message's instants as they travel: when it was read (wall clock, Unix nanoseconds)
/// and the milliseconds it has left, if it expires; `clock` is the sender's.
pub fn travel_times(message: &Message, clock: Clock) -> (u64, Option<u64>) {
    let age = clock.instant.saturating_duration_since(message.received_at);
    let received_unix = clock.unix_nanos.saturating_sub(age.as_nanos() as u64);
    let expiry_remaining_ms = message
        .properties
        .expires_at
        .map(|at| at.saturating_duration_since(clock.instant).as_millis() as u64);
    (received_unix, expiry_remaining_ms)
}

/// A message as forwarded (or stored), `clock` being the sender's.
pub fn to_proto(message: &Message, shared: &[SharedKey], clock: Clock) -> pb::ForwardedMessage {
    let p = &message.properties;
    let (received_unix, expiry_remaining_ms) = travel_times(message, clock);
    pb::ForwardedMessage {
        // Topic and publisher share the message's buffers: no copy.
        topic: message.topic.as_bytes().clone(),
        payload: message.payload.clone(),
        qos: message.qos as u32,
        retain: message.retain,
        publisher: message.publisher.as_bytes().clone(),
        payload_format_indicator: p.payload_format_indicator.map(u32::from),
        expiry_remaining_ms,
        content_type: p.content_type.as_ref().map(|s| s.to_string()),
        response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(key, value)| pb::UserProperty {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        shared_groups: shared
            .iter()
            .map(|k| pb::SharedGroup {
                group: k.group.to_string(),
                filter: k.filter.to_string(),
            })
            .collect(),
        received_unix_nanos: received_unix,
        traceparent: None,
        seq: 0,
    }
}

/// Why a forwarded message cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("QoS {0} is not 0, 1 or 2")]
    BadQos(u32),
    #[error("invalid topic name {0:?}")]
    BadTopic(String),
    #[error("packet identifier {0} is not 1..=65535")]
    BadPacketId(u32),
    #[error("publisher client id is not UTF-8")]
    BadPublisher,
    #[error("{0} missing")]
    Missing(&'static str),
}

/// A forwarded message back as a [`Message`] of this process, with the shared groups the
/// sender chose this node for.
pub fn from_proto(
    m: pb::ForwardedMessage,
    clock: Clock,
) -> Result<(Message, Vec<SharedKey>), DecodeError> {
    let now = clock.instant;
    let qos = u8::try_from(m.qos)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or(DecodeError::BadQos(m.qos))?;
    let bad_topic = |raw: &[u8]| DecodeError::BadTopic(String::from_utf8_lossy(raw).into_owned());
    // Checked before it is converted, which then cannot fail: converting a clone would
    // take (and release) another count on the buffer the topic shares.
    match std::str::from_utf8(&m.topic) {
        Ok(name) if mqtt_codec::topic::validate_topic_name(name).is_ok() => {}
        _ => return Err(bad_topic(&m.topic)),
    }
    let topic = ByteString::try_from(m.topic).map_err(|e| DecodeError::BadTopic(e.to_string()))?;
    let publisher = ByteString::try_from(m.publisher).map_err(|_| DecodeError::BadPublisher)?;
    let received_at = received_instant(m.received_unix_nanos, clock);
    let shared = m
        .shared_groups
        .into_iter()
        .map(|g| SharedKey {
            group: g.group.into(),
            filter: g.filter.into(),
        })
        .collect();
    let message = Message {
        topic,
        payload: m.payload,
        qos,
        retain: m.retain,
        properties: MessageProperties {
            payload_format_indicator: m.payload_format_indicator.map(|v| v as u8),
            expires_at: m
                .expiry_remaining_ms
                .map(|ms| now + Duration::from_millis(ms)),
            content_type: m.content_type.map(ByteString::from),
            response_topic: m.response_topic.map(ByteString::from),
            correlation_data: m.correlation_data,
            user_properties: m
                .user_properties
                .into_iter()
                .map(|p| (p.key.into(), p.value.into()))
                .collect(),
        },
        publisher,
        received_at,
        remote: true,
        trace: None,
    };
    Ok((message, shared))
}

/// The local instant matching a wall-clock time from another process (clocks on one
/// machine or NTP-synced hosts agree well enough for latency metrics); never in the future.
fn received_instant(unix_nanos: u64, clock: Clock) -> Instant {
    let age = Duration::from_nanos(clock.unix_nanos.saturating_sub(unix_nanos));
    clock.instant.checked_sub(age).unwrap_or(clock.instant)
}

/// A retained message as stored in the placement center.
pub fn retained_record(message: &Message, now: Instant) -> pb::RetainedRecord {
    let clock = Clock::at(now);
    let expires_at_unix_ms = message.properties.expires_at.map_or(0, |at| {
        let left = at.saturating_duration_since(now);
        (SystemTime::now() + left)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    let mut stored = to_proto(message, &[], clock);
    // The remaining lifetime is meaningless at rest: the absolute expiry replaces it.
    stored.expiry_remaining_ms = None;
    pb::RetainedRecord {
        message: Some(stored),
        expires_at_unix_ms,
    }
}

/// A stored retained message back as a [`Message`]; `None` when it already expired.
pub fn from_retained(
    record: pb::RetainedRecord,
    now: Instant,
) -> Result<Option<Arc<Message>>, DecodeError> {
    let Some(stored) = record.message else {
        return Ok(None);
    };
    let (mut message, _) = from_proto(stored, Clock::at(now))?;
    if record.expires_at_unix_ms != 0 {
        let wall_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if record.expires_at_unix_ms <= wall_now {
            return Ok(None);
        }
        message.properties.expires_at =
            Some(now + Duration::from_millis(record.expires_at_unix_ms - wall_now));
    }
    Ok(Some(Arc::new(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message() -> Message {
        let now = Instant::now();
        Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hello"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: MessageProperties {
                payload_format_indicator: Some(1),
                expires_at: Some(now + Duration::from_secs(60)),
                content_type: Some("text/plain".into()),
                response_topic: Some("reply".into()),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: vec![("traceparent".into(), "00-ab-cd-01".into())],
            },
            publisher: "pub-1".into(),
            received_at: now,
            remote: false,
            trace: None,
        }
    }

    #[test]
    fn round_trip_keeps_every_property_and_the_chosen_groups() {
        let m = message();
        let now = Instant::now();
        let groups = [SharedKey {
            group: "g".into(),
            filter: "a/+".into(),
        }];
        let clock = Clock::at(now);
        let (back, shared) = from_proto(to_proto(&m, &groups, clock), clock).unwrap();
        assert_eq!(back.topic, m.topic);
        assert_eq!(back.payload, m.payload);
        assert_eq!(back.qos, m.qos);
        assert!(back.retain);
        assert_eq!(back.publisher, m.publisher);
        assert_eq!(back.properties.content_type, m.properties.content_type);
        assert_eq!(back.properties.response_topic, m.properties.response_topic);
        assert_eq!(
            back.properties.correlation_data,
            m.properties.correlation_data
        );
        assert_eq!(
            back.properties.user_properties,
            m.properties.user_properties
        );
        assert_eq!(back.properties.payload_format_indicator, Some(1));
        let left = back.remaining_expiry(now).unwrap();
        assert!((59..=60).contains(&left), "{left}");
        assert_eq!(shared, groups);
        assert!(back.received_at <= Instant::now());
    }

    #[test]
    fn bad_qos_and_topics_are_refused() {
        let now = Clock::now();
        let mut p = to_proto(&message(), &[], now);
        p.qos = 3;
        assert_eq!(from_proto(p, now).unwrap_err(), DecodeError::BadQos(3));
        let mut p = to_proto(&message(), &[], now);
        p.topic = Bytes::from_static(b"a/#");
        assert!(matches!(from_proto(p, now), Err(DecodeError::BadTopic(_))));
        let mut p = to_proto(&message(), &[], now);
        p.topic = Bytes::from_static(b"a/\xff");
        assert!(matches!(from_proto(p, now), Err(DecodeError::BadTopic(_))));
        let mut p = to_proto(&message(), &[], now);
        p.publisher = Bytes::from_static(b"\xc3");
        assert_eq!(from_proto(p, now).unwrap_err(), DecodeError::BadPublisher);
    }

    #[test]
    fn retained_records_keep_absolute_expiry_and_drop_expired_ones() {
        let now = Instant::now();
        let record = retained_record(&message(), now);
        assert!(record.expires_at_unix_ms > 0);
        let back = from_retained(record.clone(), now).unwrap().unwrap();
        assert!(back.remaining_expiry(now).unwrap() >= 59);
        let mut old = record;
        old.expires_at_unix_ms = 1;
        assert!(from_retained(old, now).unwrap().is_none());
    }
}
