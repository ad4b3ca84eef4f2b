//! One trace per message: every process exports its spans over OTLP to a receiver run
//! by the test; a PUBLISH carrying a `traceparent` must produce, in that trace, the
//! publishing broker's span, a delivery span per local subscriber, the forward span, the
//! receiving broker's span and its delivery span, each the child of the one before; and
//! subscribers get the creation context unchanged (by default) or the context of their
//! own delivery span (`reparent`, here switched on for broker 2 only). A retained
//! message's trace also holds its placement-center call, and a message for a persistent
//! session the session-log append in the journal.

use std::time::Duration;

use cluster_tests::{start_cluster_with, unique, Client, Received, TestCluster, WAIT};
use local_cluster::traces::{render_tree, SpanRecord, TraceCollector};
use local_cluster::Service;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_one_trace_across_brokers() {
    let (collector, otlp) = TraceCollector::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("trace collector");
    let mut cluster = start_cluster_with(|plan| {
        plan.env.extend([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://{otlp}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]);
    })
    .await;
    creation_context_reaches_subscribers_unchanged(&cluster, &collector).await;
    cluster
        .cluster
        .restart_with_env(Service::MqttBroker, 2, &[("MQTT_BROKER_REPARENT", "true")])
        .await
        .expect("broker 2 restarts with reparent on");
    reparent_hands_each_subscriber_its_delivery_span(&cluster, &collector).await;
    cluster.cluster.stop().await.expect("graceful stop");
}

/// A random sampled W3C context, as a publishing client would send it.
fn client_context() -> (String, String, String) {
    let trace_id = format!("{:032x}", rand_u128());
    let span_id = format!("{:016x}", rand_u128() as u64 | 1);
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    (trace_id, span_id, traceparent)
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut out = 0u128;
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out = (out << 64) | u128::from(h.finish());
    }
    out.max(1)
}

fn traceparent_of(got: &Received) -> Option<String> {
    got.properties
        .as_ref()?
        .user_properties
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
}

/// Publishes at QoS 1 with `traceparent` as a user property; waits for the PUBACK.
async fn publish_traced(publisher: &mut Client, topic: &str, traceparent: &str, retain: bool) {
    let properties = PublishProperties {
        user_properties: vec![("traceparent".into(), traceparent.into())],
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties(topic, QoS::AtLeastOnce, retain, "traced", properties)
        .await
        .expect("PUBLISH queued");
    publisher
        .expect("PUBACK", |p| {
            matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)).then_some(())
        })
        .await;
}

/// One scenario's clients: subscribers to a new topic on brokers 1 (`local`) and 2
/// (`remote`), and a publisher on broker `publisher_node`.
struct Scenario {
    topic: String,
    local: Client,
    remote: Client,
    publisher: Client,
}

impl Scenario {
    async fn start(c: &TestCluster, name: &str, publisher_node: u64) -> Self {
        let topic = unique(name);
        let mut local = Client::connect(c.mqtt(1), &unique("sub1")).await;
        let mut remote = Client::connect(c.mqtt(2), &unique("sub2")).await;
        local.subscribe(&topic, QoS::AtLeastOnce).await;
        remote.subscribe(&topic, QoS::AtLeastOnce).await;
        let publisher = Client::connect(c.mqtt(publisher_node), &unique("pub")).await;
        Self {
            topic,
            local,
            remote,
            publisher,
        }
    }
}

/// Waits until trace `trace_id` holds every span `expected` names (process, span name).
async fn wait_for_spans(
    collector: &TraceCollector,
    trace_id: &str,
    expected: &[(&str, &str)],
) -> Vec<SpanRecord> {
    wait_until(
        collector,
        trace_id,
        &format!("some of {expected:?}"),
        |spans| {
            expected
                .iter()
                .all(|(process, name)| has(spans, process, name))
        },
    )
    .await
}

/// Waits until trace `trace_id` satisfies `complete`; panics with the tree after [`WAIT`].
async fn wait_until(
    collector: &TraceCollector,
    trace_id: &str,
    what: &str,
    complete: impl Fn(&[SpanRecord]) -> bool,
) -> Vec<SpanRecord> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let spans = collector.trace(trace_id);
        if complete(&spans) {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trace {trace_id} lacks {what}; got:\n{}",
            render_tree(&spans)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(spans: &[SpanRecord], process: &str, name: &str) -> bool {
    spans.iter().any(|s| s.process == process && s.name == name)
}

fn one<'a>(spans: &'a [SpanRecord], process: &str, name: &str) -> &'a SpanRecord {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.process == process && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} on {process}:\n{}",
        render_tree(spans)
    );
    found[0]
}

async fn creation_context_reaches_subscribers_unchanged(
    c: &TestCluster,
    collector: &TraceCollector,
) {
    let Scenario {
        topic,
        mut local,
        mut remote,
        mut publisher,
    } = Scenario::start(c, "traced", 1).await;
    let (trace_id, client_span, traceparent) = client_context();
    publish_traced(&mut publisher, &topic, &traceparent, false).await;

    for sub in [&mut local, &mut remote] {
        let got = sub.received().await;
        assert_eq!(
            traceparent_of(&got).as_deref(),
            Some(traceparent.as_str()),
            "the creation context is not the broker's to change"
        );
    }

    let spans = wait_for_spans(
        collector,
        &trace_id,
        &[
            ("mqtt-broker-1", "mqtt.publish"),
            ("mqtt-broker-1", "mqtt.deliver"),
            ("mqtt-broker-1", "mqtt.forward"),
            ("mqtt-broker-2", "mqtt.forward.receive"),
            ("mqtt-broker-2", "mqtt.deliver"),
        ],
    )
    .await;
    let tree = render_tree(&spans);
    eprintln!("{tree}");
    let publish = one(&spans, "mqtt-broker-1", "mqtt.publish");
    assert_eq!(
        publish.parent_span_id, client_span,
        "child of the client's span:\n{tree}"
    );
    let local_delivery = one(&spans, "mqtt-broker-1", "mqtt.deliver");
    assert_eq!(local_delivery.parent_span_id, publish.span_id, "{tree}");
    let forward = one(&spans, "mqtt-broker-1", "mqtt.forward");
    assert_eq!(forward.parent_span_id, publish.span_id, "{tree}");
    let receive = one(&spans, "mqtt-broker-2", "mqtt.forward.receive");
    assert_eq!(receive.parent_span_id, forward.span_id, "{tree}");
    let remote_delivery = one(&spans, "mqtt-broker-2", "mqtt.deliver");
    assert_eq!(remote_delivery.parent_span_id, receive.span_id, "{tree}");
    assert!(
        !spans.iter().any(|s| s.process == "mqtt-broker-3"),
        "broker 3 has no subscriber and sees nothing:\n{tree}"
    );
    for span in &spans {
        assert_eq!(
            span.attributes.get("messaging.system").map(String::as_str),
            Some("mqtt"),
            "{span:?}"
        );
        assert_eq!(
            span.attributes.get("messaging.destination.name"),
            Some(&topic),
            "{span:?}"
        );
        assert!(span.name.starts_with("mqtt."), "fixed span names: {span:?}");
    }
    assert_eq!(
        publish.attributes.get("mqtt.qos").map(String::as_str),
        Some("1")
    );
    retained_message_trace_reaches_the_placement_center(collector, &mut publisher).await;
    session_log_append_is_in_the_trace(c, collector, &mut publisher).await;
}

/// A message for a persistent session is written to the session log of the subscriber's
/// broker before it is acknowledged: that append, and the journal's handling of it, are
/// in the message's trace, under the receiving broker's span.
async fn session_log_append_is_in_the_trace(
    c: &TestCluster,
    collector: &TraceCollector,
    publisher: &mut Client,
) {
    let topic = unique("traced-durable");
    let mut durable = Client::connect_with(c.mqtt(2), &unique("durable"), |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(300));
    })
    .await;
    durable.subscribe(&topic, QoS::AtLeastOnce).await;
    let (trace_id, _, traceparent) = client_context();
    publish_traced(publisher, &topic, &traceparent, false).await;
    durable.received().await;
    let spans = wait_until(
        collector,
        &trace_id,
        "a session-log append and its journal span",
        |spans| {
            spans
                .iter()
                .any(|s| s.process.starts_with("journal-server-"))
                && has(spans, "mqtt-broker-2", "mqtt.session_log.append")
                && has(spans, "mqtt-broker-2", "mqtt.forward.receive")
        },
    )
    .await;
    let tree = render_tree(&spans);
    eprintln!("{tree}");
    let receive = one(&spans, "mqtt-broker-2", "mqtt.forward.receive");
    let append = one(&spans, "mqtt-broker-2", "mqtt.session_log.append");
    assert_eq!(append.parent_span_id, receive.span_id, "{tree}");
    assert_eq!(
        append
            .attributes
            .get("robustmq.journal.shard")
            .map(String::as_str),
        Some("mqtt-sessions-2"),
        "{tree}"
    );
    let journal = spans
        .iter()
        .find(|s| s.process.starts_with("journal-server-"))
        .expect("found above");
    assert_descends(&spans, journal, append);
}

/// Walks up from `span` through its parents: it must reach `ancestor`.
fn assert_descends(spans: &[SpanRecord], span: &SpanRecord, ancestor: &SpanRecord) {
    let by_id: std::collections::HashMap<&str, &SpanRecord> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut at = span;
    while at.span_id != ancestor.span_id {
        at = by_id.get(at.parent_span_id.as_str()).unwrap_or_else(|| {
            panic!(
                "{} is not under {}:\n{}",
                span.name,
                ancestor.name,
                render_tree(spans)
            )
        });
    }
}

/// A retained PUBLISH is stored in the placement center before it is acknowledged: that
/// call, and the placement center's handling of it, are in the message's trace.
async fn retained_message_trace_reaches_the_placement_center(
    collector: &TraceCollector,
    publisher: &mut Client,
) {
    let topic = unique("traced-retained");
    let (trace_id, _, traceparent) = client_context();
    publish_traced(publisher, &topic, &traceparent, true).await;
    // Each process exports on its own schedule: wait for both ends.
    let spans = wait_until(collector, &trace_id, "the placement-center call", |spans| {
        spans
            .iter()
            .any(|s| s.process.starts_with("placement-center-"))
            && has(spans, "mqtt-broker-1", "mqtt.publish")
    })
    .await;
    eprintln!("{}", render_tree(&spans));
    let publish = one(&spans, "mqtt-broker-1", "mqtt.publish");
    let server = spans
        .iter()
        .find(|s| s.process.starts_with("placement-center-"))
        .expect("found above");
    assert_descends(&spans, server, publish);
}

async fn reparent_hands_each_subscriber_its_delivery_span(
    c: &TestCluster,
    collector: &TraceCollector,
) {
    let Scenario {
        topic,
        mut local,
        mut remote,
        mut publisher,
    } = Scenario::start(c, "reparented", 3).await;
    let (trace_id, _, traceparent) = client_context();
    publish_traced(&mut publisher, &topic, &traceparent, false).await;

    let unchanged = traceparent_of(&local.received().await);
    assert_eq!(
        unchanged.as_deref(),
        Some(traceparent.as_str()),
        "broker 1 keeps the default"
    );
    let rewritten = traceparent_of(&remote.received().await).expect("a traceparent");

    let spans = wait_for_spans(
        collector,
        &trace_id,
        &[
            ("mqtt-broker-3", "mqtt.publish"),
            ("mqtt-broker-2", "mqtt.deliver"),
            ("mqtt-broker-1", "mqtt.deliver"),
        ],
    )
    .await;
    let delivery = one(&spans, "mqtt-broker-2", "mqtt.deliver");
    assert_eq!(
        rewritten,
        format!("00-{trace_id}-{}-01", delivery.span_id),
        "the subscriber's parent is its delivery span:\n{}",
        render_tree(&spans)
    );
}
