//! One trace per message, by the standards: the W3C Trace Context for MQTT draft carries
//! the context in MQTT 5 user properties (`traceparent`, `tracestate`), and the
//! OpenTelemetry messaging conventions treat it as the message's *creation context*,
//! which intermediaries do not change; consumers parent or link their work to it.
//!
//! A PUBLISH whose user properties hold a sampled `traceparent` gets the broker's
//! `mqtt.publish` span as a child of that context. A message without one is traced only
//! when `[message_tracing] sample_ratio` picks it, with `mqtt.publish` as the root. From
//! there, in the same trace:
//! * `mqtt.forward` (producer), one per peer broker the message goes to, from queueing
//!   until the peer answered the batch; its context travels to the peer in
//!   `ForwardedMessage.traceparent` (the message's own properties are left alone);
//! * `mqtt.forward.receive` (consumer) on the peer, child of the forward span, while the
//!   peer routes the message to its subscribers;
//! * `mqtt.deliver` (producer), one per subscriber, child of the publish (or receive)
//!   span, from the moment the message is queued for the subscriber until its PUBLISH is
//!   written to the subscriber's connection.
//!
//! Subscribers get the `traceparent` user property unchanged, unless `reparent` is set:
//! then each MQTT 5 subscriber gets the context of its own delivery span, so that its
//! processing span becomes that span's child. Spans carry messaging attributes; no
//! payload, no client id in a span name.
//!
//! An untraced message costs one scan of its user properties and no span at all; a
//! message whose `traceparent` says "not sampled" is not traced either (the caller
//! decided).

use mqtt_codec::{ByteString, QoS, UserProperties};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use serde::Deserialize;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use common_metrics::propagation::{self, TRACEPARENT, TRACESTATE};

use crate::message::Message;

/// Section `[message_tracing]` of the broker config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageTracingConfig {
    /// Rewrite `traceparent` for each MQTT 5 subscriber to the context of its delivery
    /// span (instead of passing the creation context on unchanged).
    pub reparent: bool,
    /// Fraction (0.0 to 1.0) of messages that arrive *without* a trace context to trace,
    /// with the broker's publish span as the root.
    pub sample_ratio: f64,
    /// Give a message the broker started a trace for a `traceparent` user property (its
    /// publish span), so MQTT 5 subscribers can continue that trace.
    pub attach_context: bool,
}

impl Default for MessageTracingConfig {
    fn default() -> Self {
        Self {
            reparent: false,
            sample_ratio: 0.0,
            attach_context: false,
        }
    }
}

impl MessageTracingConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "message_tracing.sample_ratio: {} is not between 0.0 and 1.0",
                self.sample_ratio
            ));
        }
        Ok(())
    }
}

/// The trace a message belongs to: the span its deliveries and forwards are children of.
pub type MessageTrace = Option<Box<SpanContext>>;

/// The sampled trace context among `properties`, if any (`None` also when the first
/// `traceparent` is malformed or says "not sampled").
fn creation_context(properties: &UserProperties) -> Option<Result<Context, ()>> {
    if !properties
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT))
    {
        return None;
    }
    let cx = propagation::extract_from_pairs(properties.iter().map(|(k, v)| (&k[..], &v[..])));
    let sc = cx.span().span_context().clone();
    Some(if sc.is_valid() && sc.is_sampled() {
        Ok(cx)
    } else {
        Err(())
    })
}

/// The span context of `span` if it is recorded and sampled.
fn sampled(span: &Span) -> MessageTrace {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| Box::new(sc))
}

/// Starts the `mqtt.publish` span of a message a client just published, and sets
/// `message.trace`. Returns [`Span::none`] for a message that is not traced. Keep the
/// span until the message has been handed to every local session and peer.
pub fn publish_span(config: &MessageTracingConfig, message: &mut Message) -> Span {
    let parent = match creation_context(&message.properties.user_properties) {
        Some(Ok(cx)) => Some(cx),
        Some(Err(())) => return Span::none(),
        None if config.sample_ratio > 0.0 && rand::random::<f64>() < config.sample_ratio => None,
        None => return Span::none(),
    };
    let span = tracing::info_span!(
        parent: None,
        "mqtt.publish",
        otel.kind = "server",
        messaging.system = "mqtt",
        messaging.operation.name = "publish",
        messaging.operation.type = "receive",
        messaging.destination.name = %message.topic,
        messaging.client.id = %message.publisher,
        messaging.message.body.size = message.payload.len(),
        mqtt.qos = message.qos as u8,
        mqtt.retain = message.retain,
    );
    let rooted = parent.is_none();
    // An empty context makes the span a root, whatever tracing span is current.
    let _ = span.set_parent(parent.unwrap_or_default());
    message.trace = sampled(&span);
    if rooted && config.attach_context && message.trace.is_some() {
        let cx = span.context();
        propagation::inject_context(&cx, |key, value| {
            message
                .properties
                .user_properties
                .push((key.into(), value.into()));
        });
    }
    span
}

/// A span that is a child of `parent` (a span of another process or task).
fn child_of(span: Span, parent: &SpanContext) -> Span {
    let _ = span.set_parent(Context::new().with_remote_span_context(parent.clone()));
    span
}

/// The `mqtt.deliver` span of one delivery of a traced message to subscriber
/// `client_id`; it ends when the delivery is written to the client (or dropped).
pub fn deliver_span(parent: &SpanContext, message: &Message, client_id: &str, qos: QoS) -> Span {
    child_of(
        tracing::info_span!(
            parent: None,
            "mqtt.deliver",
            otel.kind = "producer",
            messaging.system = "mqtt",
            messaging.operation.name = "deliver",
            messaging.operation.type = "send",
            messaging.destination.name = %message.topic,
            messaging.client.id = client_id,
            mqtt.qos = qos as u8,
        ),
        parent,
    )
}

/// The `mqtt.forward` span of a traced message on its way to peer broker `node`.
pub fn forward_span(parent: &SpanContext, message: &Message, node: u64) -> Span {
    child_of(
        tracing::info_span!(
            parent: None,
            "mqtt.forward",
            otel.kind = "producer",
            messaging.system = "mqtt",
            messaging.operation.name = "forward",
            messaging.operation.type = "send",
            messaging.destination.name = %message.topic,
            robustmq.peer.node_id = node,
        ),
        parent,
    )
}

/// The `traceparent` of `span`, for the peer a message is forwarded to.
pub fn traceparent(span: &Span) -> Option<String> {
    let mut out = None;
    propagation::inject_context(&span.context(), |key, value| {
        if key == TRACEPARENT {
            out = Some(value);
        }
    });
    out
}

/// The `mqtt.forward.receive` span of a message peer `from_node` forwarded here with
/// `traceparent`, and sets `message.trace`; [`Span::none`] when the context is
/// malformed or not sampled.
pub fn receive_span(traceparent: &str, message: &mut Message, from_node: u64) -> Span {
    let cx = propagation::extract_from_pairs([(TRACEPARENT, traceparent)]);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() || !sc.is_sampled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        parent: None,
        "mqtt.forward.receive",
        otel.kind = "consumer",
        messaging.system = "mqtt",
        messaging.operation.name = "receive",
        messaging.operation.type = "receive",
        messaging.destination.name = %message.topic,
        robustmq.peer.node_id = from_node,
    );
    let _ = span.set_parent(cx);
    message.trace = sampled(&span);
    span
}

/// `properties` with the trace context replaced by that of `span` (reparent mode).
pub fn reparented(properties: &UserProperties, span: &Span) -> UserProperties {
    let mut out: UserProperties = properties
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case(TRACEPARENT) && !k.eq_ignore_ascii_case(TRACESTATE)
        })
        .cloned()
        .collect();
    propagation::inject_context(&span.context(), |key, value| {
        out.push((ByteString::from(key), ByteString::from(value)));
    });
    out
}

/// The exemplar context of a delivery: its span's, when it has one.
pub fn exemplar_context(span: Option<&Span>) -> Option<Context> {
    span.filter(|s| !s.is_disabled())
        .map(OpenTelemetrySpanExt::context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use common_metrics::testing::{attribute, capture_spans};
    use opentelemetry::trace::SpanId;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";

    fn message(user_properties: &[(&str, &str)]) -> Message {
        let mut m = Message {
            topic: "sensors/1".into(),
            payload: bytes::Bytes::from_static(b"21.5"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            publisher: "publisher-7".into(),
            received_at: Instant::now(),
            trace: None,
        };
        m.properties.user_properties = user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(*k), ByteString::from(*v)))
            .collect();
        m
    }

    fn config(sample_ratio: f64, attach_context: bool) -> MessageTracingConfig {
        MessageTracingConfig {
            sample_ratio,
            attach_context,
            ..Default::default()
        }
    }

    fn context_property(m: &Message) -> Option<String> {
        m.properties
            .user_properties
            .iter()
            .find(|(k, _)| k == TRACEPARENT)
            .map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_sampled_creation_context_parents_the_publish_span() {
        let capture = capture_spans();
        let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
        let mut m = message(&[("app", "x"), ("traceparent", &traceparent)]);
        let span = publish_span(&config(0.0, true), &mut m);
        let trace = m.trace.clone().expect("traced");
        assert_eq!(trace.trace_id().to_string(), TRACE);
        drop(span);
        let publish = capture.span("mqtt.publish").expect("publish span");
        assert_eq!(publish.parent_span_id.to_string(), CLIENT_SPAN);
        assert_eq!(publish.span_context.span_id(), trace.span_id());
        assert_eq!(
            attribute(&publish, "messaging.destination.name").as_deref(),
            Some("sensors/1")
        );
        assert_eq!(
            attribute(&publish, "messaging.system").as_deref(),
            Some("mqtt")
        );
        assert_eq!(
            context_property(&m),
            Some(traceparent),
            "a creation context is never rewritten, even with attach_context"
        );
        assert_eq!(m.properties.user_properties.len(), 2);
    }

    #[test]
    fn unsampled_or_absent_contexts_are_not_traced() {
        let capture = capture_spans();
        let mut m = message(&[("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-00"))]);
        assert!(publish_span(&config(1.0, false), &mut m).is_none());
        assert!(m.trace.is_none(), "the caller decided not to sample");
        let mut m = message(&[]);
        assert!(publish_span(&config(0.0, true), &mut m).is_none());
        assert!(m.trace.is_none() && m.properties.user_properties.is_empty());
        let mut m = message(&[("traceparent", "garbage")]);
        assert!(publish_span(&config(0.0, false), &mut m).is_none());
        assert!(capture.spans().is_empty());
    }

    #[test]
    fn a_sampled_message_without_context_roots_a_trace_and_may_carry_it() {
        let capture = capture_spans();
        let mut m = message(&[]);
        let span = publish_span(&config(1.0, true), &mut m);
        let trace = m.trace.clone().expect("sampled at ratio 1");
        drop(span);
        let publish = capture.span("mqtt.publish").expect("publish span");
        assert_eq!(publish.parent_span_id, SpanId::INVALID, "a root span");
        assert_eq!(
            context_property(&m),
            Some(format!("00-{}-{}-01", trace.trace_id(), trace.span_id()))
        );
    }

    #[test]
    fn deliveries_forwards_and_receives_chain_and_reparent_rewrites_the_context() {
        let capture = capture_spans();
        let mut m = message(&[
            ("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-01")),
            ("tracestate", "vendor=1"),
            ("app", "kept"),
        ]);
        let publish = publish_span(&config(0.0, false), &mut m);
        let parent = m.trace.clone().expect("traced");

        let forward = forward_span(&parent, &m, 2);
        let sent = traceparent(&forward).expect("forward context");
        let mut remote = message(&[]);
        let receive = receive_span(&sent, &mut remote, 1);
        let remote_parent = remote.trace.clone().expect("traced on the peer");
        let delivery = deliver_span(&remote_parent, &remote, "subscriber-1", QoS::AtMostOnce);
        // A local delivery inherits the creation context's tracestate.
        let local = deliver_span(&parent, &m, "subscriber-2", QoS::AtLeastOnce);
        let rewritten = reparented(&m.properties.user_properties, &local);
        let delivery_cx = local.context().span().span_context().clone();
        assert_eq!(
            rewritten,
            vec![
                ("app".into(), "kept".into()),
                (
                    "traceparent".into(),
                    format!("00-{TRACE}-{}-01", delivery_cx.span_id()).into()
                ),
                ("tracestate".into(), "vendor=1".into()),
            ]
        );
        drop((local, delivery, receive, forward, publish));

        let span = |name| capture.span(name).unwrap_or_else(|| panic!("{name}"));
        let (publish, forward, receive, delivery) = (
            span("mqtt.publish"),
            span("mqtt.forward"),
            span("mqtt.forward.receive"),
            capture
                .spans()
                .into_iter()
                .find(|s| {
                    s.name == "mqtt.deliver"
                        && attribute(s, "messaging.client.id").as_deref() == Some("subscriber-1")
                })
                .expect("remote delivery"),
        );
        assert_eq!(forward.parent_span_id, publish.span_context.span_id());
        assert_eq!(receive.parent_span_id, forward.span_context.span_id());
        assert_eq!(delivery.parent_span_id, receive.span_context.span_id());
        for s in [&publish, &forward, &receive, &delivery] {
            assert_eq!(s.span_context.trace_id().to_string(), TRACE);
        }
        assert_eq!(
            attribute(&delivery, "messaging.client.id").as_deref(),
            Some("subscriber-1")
        );
        assert_eq!(
            attribute(&forward, "robustmq.peer.node_id").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn sample_ratio_is_checked() {
        assert!(config(0.5, false).validate().is_ok());
        let err = config(1.5, false).validate().unwrap_err();
        assert!(err.contains("message_tracing.sample_ratio"), "{err}");
        assert!(config(-0.1, false).validate().is_err());
    }
}
