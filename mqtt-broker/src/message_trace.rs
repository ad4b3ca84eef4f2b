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
//! The spans are made with the OpenTelemetry API directly ([`MessageTracer`], over the
//! global tracer provider that telemetry installs), not through `tracing`: a span made
//! through `tracing-opentelemetry` also goes through the subscriber's registry and the log
//! layer, which cost several times more per traced message.
//!
//! An untraced message costs one scan of its user properties and no span at all; a
//! message whose `traceparent` says "not sampled" is not traced either (the caller
//! decided).

use mqtt_codec::{ByteString, QoS, UserProperties};
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use serde::Deserialize;

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

/// A message span, started with the OpenTelemetry API directly (not through `tracing`:
/// per-message spans made through `tracing-opentelemetry` and the log layer cost about
/// twenty untraced messages each). It ends when dropped.
pub struct MessageSpan(BoxedSpan);

impl std::fmt::Debug for MessageSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MessageSpan")
            .field(self.0.span_context())
            .finish()
    }
}

impl MessageSpan {
    pub fn span_context(&self) -> &SpanContext {
        self.0.span_context()
    }

    /// The span as an OpenTelemetry context (a parent, a propagated header, an exemplar).
    pub fn context(&self) -> Context {
        Context::new().with_remote_span_context(self.span_context().clone())
    }

    /// Its context, when it records and is sampled (a no-op tracer's span carries its
    /// parent's context without recording anything).
    fn sampled(&self) -> MessageTrace {
        let sc = self.span_context();
        (self.0.is_recording() && sc.is_valid() && sc.is_sampled()).then(|| Box::new(sc.clone()))
    }
}

/// Starts the spans of traced messages; one per broker.
pub struct MessageTracer {
    config: MessageTracingConfig,
    tracer: BoxedTracer,
}

impl std::fmt::Debug for MessageTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageTracer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MessageTracer {
    /// A tracer from the global tracer provider (installed by telemetry at start-up;
    /// without one, nothing is recorded and no message is traced).
    pub fn new(config: MessageTracingConfig) -> Self {
        Self::with_tracer(
            config,
            opentelemetry::global::tracer(env!("CARGO_PKG_NAME")),
        )
    }

    pub fn with_tracer(config: MessageTracingConfig, tracer: BoxedTracer) -> Self {
        Self { config, tracer }
    }

    pub fn config(&self) -> &MessageTracingConfig {
        &self.config
    }

    fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        parent: &Context,
    ) -> MessageSpan {
        MessageSpan(
            self.tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, parent),
        )
    }

    /// Starts the `mqtt.publish` span of a message a client just published and sets
    /// `message.trace`; `None` for a message that is not traced. Keep the span until the
    /// message has been handed to every local session and peer.
    pub fn publish_span(&self, message: &mut Message) -> Option<MessageSpan> {
        let ratio = self.config.sample_ratio;
        let parent = match creation_context(&message.properties.user_properties) {
            Some(Ok(cx)) => Some(cx),
            Some(Err(())) => return None,
            None if ratio > 0.0 && rand::random::<f64>() < ratio => None,
            None => return None,
        };
        let rooted = parent.is_none();
        let span = self.start(
            "mqtt.publish",
            SpanKind::Server,
            vec![
                KeyValue::new("messaging.system", "mqtt"),
                KeyValue::new("messaging.operation.name", "publish"),
                KeyValue::new("messaging.operation.type", "receive"),
                KeyValue::new("messaging.destination.name", message.topic.to_string()),
                KeyValue::new("messaging.client.id", message.publisher.to_string()),
                KeyValue::new("messaging.message.body.size", message.payload.len() as i64),
                KeyValue::new("mqtt.qos", message.qos as i64),
                KeyValue::new("mqtt.retain", message.retain),
            ],
            // An empty context makes the span a root.
            &parent.unwrap_or_default(),
        );
        message.trace = Some(span.sampled()?);
        if rooted && self.config.attach_context {
            propagation::inject_context(&span.context(), |key, value| {
                message
                    .properties
                    .user_properties
                    .push((key.into(), value.into()));
            });
        }
        Some(span)
    }

    /// The `mqtt.deliver` span of one delivery of a traced message to subscriber
    /// `client_id`; it ends when the delivery is written to the client (or dropped).
    pub fn deliver_span(
        &self,
        parent: &SpanContext,
        message: &Message,
        client_id: &str,
        qos: QoS,
    ) -> MessageSpan {
        self.start(
            "mqtt.deliver",
            SpanKind::Producer,
            vec![
                KeyValue::new("messaging.system", "mqtt"),
                KeyValue::new("messaging.operation.name", "deliver"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", message.topic.to_string()),
                KeyValue::new("messaging.client.id", client_id.to_owned()),
                KeyValue::new("mqtt.qos", qos as i64),
            ],
            &Context::new().with_remote_span_context(parent.clone()),
        )
    }

    /// The span of one session-log append carrying records of traced messages: the child
    /// of the first message's span, linked to the others'.
    pub fn append_span(
        &self,
        parent: &SpanContext,
        others: &[SpanContext],
        shard: &str,
        records: usize,
    ) -> MessageSpan {
        MessageSpan(
            self.tracer
                .span_builder("mqtt.session_log.append")
                .with_kind(SpanKind::Client)
                .with_attributes(vec![
                    KeyValue::new("robustmq.journal.shard", shard.to_owned()),
                    KeyValue::new("robustmq.journal.records", records as i64),
                ])
                .with_links(
                    others
                        .iter()
                        .map(|sc| opentelemetry::trace::Link::with_context(sc.clone()))
                        .collect(),
                )
                .start_with_context(
                    &self.tracer,
                    &Context::new().with_remote_span_context(parent.clone()),
                ),
        )
    }

    /// The `mqtt.forward` span of a traced message on its way to peer broker `node`.
    pub fn forward_span(&self, parent: &SpanContext, message: &Message, node: u64) -> MessageSpan {
        self.start(
            "mqtt.forward",
            SpanKind::Producer,
            vec![
                KeyValue::new("messaging.system", "mqtt"),
                KeyValue::new("messaging.operation.name", "forward"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", message.topic.to_string()),
                KeyValue::new("robustmq.peer.node_id", node as i64),
            ],
            &Context::new().with_remote_span_context(parent.clone()),
        )
    }

    /// The `mqtt.forward.receive` span of a message peer `from_node` forwarded here with
    /// `traceparent`, and sets `message.trace`; `None` when the context is malformed or
    /// not sampled.
    pub fn receive_span(
        &self,
        traceparent: &str,
        message: &mut Message,
        from_node: u64,
    ) -> Option<MessageSpan> {
        let cx = propagation::extract_from_pairs([(TRACEPARENT, traceparent)]);
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() || !sc.is_sampled() {
            return None;
        }
        let span = self.start(
            "mqtt.forward.receive",
            SpanKind::Consumer,
            vec![
                KeyValue::new("messaging.system", "mqtt"),
                KeyValue::new("messaging.operation.name", "receive"),
                KeyValue::new("messaging.operation.type", "receive"),
                KeyValue::new("messaging.destination.name", message.topic.to_string()),
                KeyValue::new("robustmq.peer.node_id", from_node as i64),
            ],
            &cx,
        );
        message.trace = Some(span.sampled()?);
        Some(span)
    }
}

impl MessageSpan {
    /// Marks the span failed with `message`.
    pub fn fail(&mut self, message: String) {
        self.0
            .set_status(opentelemetry::trace::Status::error(message));
    }
}

/// The `traceparent` of `span`, for the peer a message is forwarded to.
pub fn traceparent(span: &MessageSpan) -> Option<String> {
    let mut out = None;
    propagation::inject_context(&span.context(), |key, value| {
        if key == TRACEPARENT {
            out = Some(value);
        }
    });
    out
}

/// `properties` with the trace context replaced by that of `span` (reparent mode).
pub fn reparented(properties: &UserProperties, span: &MessageSpan) -> UserProperties {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry::Value;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";

    /// A tracer whose spans land in memory as they end.
    fn tracer(sample_ratio: f64, attach_context: bool) -> (MessageTracer, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let config = MessageTracingConfig {
            sample_ratio,
            attach_context,
            ..Default::default()
        };
        let tracer = BoxedTracer::new(Box::new(provider.tracer("test")));
        (MessageTracer::with_tracer(config, tracer), exporter)
    }

    fn spans(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
        exporter.get_finished_spans().expect("spans")
    }

    fn finished(exporter: &InMemorySpanExporter, name: &str) -> SpanData {
        spans(exporter)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span"))
    }

    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| match &kv.value {
                Value::String(s) => s.to_string(),
                other => other.to_string(),
            })
    }

    fn message(user_properties: &[(&str, &str)]) -> Message {
        let mut m = Message {
            topic: "sensors/1".into(),
            payload: bytes::Bytes::from_static(b"21.5"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            publisher: "publisher-7".into(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        };
        m.properties.user_properties = user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(*k), ByteString::from(*v)))
            .collect();
        m
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
        let (tracer, exporter) = tracer(0.0, true);
        let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
        let mut m = message(&[("app", "x"), ("traceparent", &traceparent)]);
        let span = tracer.publish_span(&mut m).expect("traced");
        let trace = m.trace.clone().expect("traced");
        assert_eq!(trace.trace_id().to_string(), TRACE);
        drop(span);
        let publish = finished(&exporter, "mqtt.publish");
        assert_eq!(publish.parent_span_id.to_string(), CLIENT_SPAN);
        assert_eq!(publish.span_context.span_id(), trace.span_id());
        assert_eq!(publish.span_kind, SpanKind::Server);
        assert_eq!(
            attribute(&publish, "messaging.destination.name").as_deref(),
            Some("sensors/1")
        );
        assert_eq!(
            attribute(&publish, "messaging.system").as_deref(),
            Some("mqtt")
        );
        assert_eq!(attribute(&publish, "mqtt.qos").as_deref(), Some("1"));
        assert_eq!(
            context_property(&m),
            Some(traceparent),
            "a creation context is never rewritten, even with attach_context"
        );
        assert_eq!(m.properties.user_properties.len(), 2);
    }

    #[test]
    fn unsampled_or_absent_contexts_are_not_traced() {
        let (tracer, exporter) = tracer(1.0, false);
        let mut m = message(&[("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-00"))]);
        assert!(tracer.publish_span(&mut m).is_none());
        assert!(m.trace.is_none(), "the caller decided not to sample");
        let mut m = message(&[("traceparent", "garbage")]);
        assert!(tracer.publish_span(&mut m).is_none());
        let (tracer, _) = self::tracer(0.0, true);
        let mut m = message(&[]);
        assert!(tracer.publish_span(&mut m).is_none());
        assert!(m.trace.is_none() && m.properties.user_properties.is_empty());
        assert!(spans(&exporter).is_empty());
    }

    #[test]
    fn without_a_tracer_provider_nothing_is_traced() {
        // No global provider is installed in unit tests: the global tracer is a no-op.
        let tracer = MessageTracer::new(MessageTracingConfig::default());
        let mut m = message(&[("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-01"))]);
        assert!(tracer.publish_span(&mut m).is_none());
        assert!(m.trace.is_none());
    }

    #[test]
    fn a_sampled_message_without_context_roots_a_trace_and_may_carry_it() {
        let (tracer, exporter) = tracer(1.0, true);
        let mut m = message(&[]);
        let span = tracer.publish_span(&mut m).expect("sampled at ratio 1");
        let trace = m.trace.clone().expect("sampled at ratio 1");
        drop(span);
        let publish = finished(&exporter, "mqtt.publish");
        assert_eq!(publish.parent_span_id, SpanId::INVALID, "a root span");
        assert_eq!(
            context_property(&m),
            Some(format!("00-{}-{}-01", trace.trace_id(), trace.span_id()))
        );
    }

    #[test]
    fn deliveries_forwards_and_receives_chain_and_reparent_rewrites_the_context() {
        let (tracer, exporter) = tracer(0.0, false);
        let mut m = message(&[
            ("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-01")),
            ("tracestate", "vendor=1"),
            ("app", "kept"),
        ]);
        let publish = tracer.publish_span(&mut m).expect("traced");
        let parent = m.trace.clone().expect("traced");

        let forward = tracer.forward_span(&parent, &m, 2);
        let sent = traceparent(&forward).expect("forward context");
        let mut remote = message(&[]);
        let receive = tracer.receive_span(&sent, &mut remote, 1).expect("traced");
        let remote_parent = remote.trace.clone().expect("traced on the peer");
        let delivery =
            tracer.deliver_span(&remote_parent, &remote, "subscriber-1", QoS::AtMostOnce);
        // A local delivery inherits the creation context's tracestate.
        let local = tracer.deliver_span(&parent, &m, "subscriber-2", QoS::AtLeastOnce);
        let rewritten = reparented(&m.properties.user_properties, &local);
        assert_eq!(
            rewritten,
            vec![
                ("app".into(), "kept".into()),
                (
                    "traceparent".into(),
                    format!("00-{TRACE}-{}-01", local.span_context().span_id()).into()
                ),
                ("tracestate".into(), "vendor=1".into()),
            ]
        );
        drop((local, delivery, receive, forward, publish));

        let (publish, forward, receive) = (
            finished(&exporter, "mqtt.publish"),
            finished(&exporter, "mqtt.forward"),
            finished(&exporter, "mqtt.forward.receive"),
        );
        let delivery = spans(&exporter)
            .into_iter()
            .find(|s| {
                s.name == "mqtt.deliver"
                    && attribute(s, "messaging.client.id").as_deref() == Some("subscriber-1")
            })
            .expect("remote delivery");
        assert_eq!(forward.parent_span_id, publish.span_context.span_id());
        assert_eq!(receive.parent_span_id, forward.span_context.span_id());
        assert_eq!(delivery.parent_span_id, receive.span_context.span_id());
        for s in [&publish, &forward, &receive, &delivery] {
            assert_eq!(s.span_context.trace_id().to_string(), TRACE);
        }
        assert_eq!(delivery.span_kind, SpanKind::Producer);
        assert_eq!(receive.span_kind, SpanKind::Consumer);
        assert_eq!(
            attribute(&forward, "robustmq.peer.node_id").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn sample_ratio_is_checked() {
        let config = |sample_ratio| MessageTracingConfig {
            sample_ratio,
            ..Default::default()
        };
        assert!(config(0.5).validate().is_ok());
        let err = config(1.5).validate().unwrap_err();
        assert!(err.contains("message_tracing.sample_ratio"), "{err}");
        assert!(config(-0.1).validate().is_err());
    }
}
