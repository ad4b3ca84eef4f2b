//! Operations: `$SYS/broker/...` statistics topics, the metrics and health endpoint, and
//! graceful shutdown (MQTT 5 clients get DISCONNECT 0x8B, wills are published,
//! `Server::run` returns).

use std::collections::HashMap;

use mqtt_codec::{LastWill, Packet, ProtocolVersion, QoS, ReasonCode};
use rumqttc::QoS as Q4;

use crate::harness::*;

/// `$SYS/broker/...` topics are published every `sys.interval_secs` as retained
/// messages, are not matched by `#`, and report live numbers.
#[tokio::test]
async fn sys_topics_report_broker_statistics() {
    let b = TestBroker::with(|c| c.sys.interval_secs = 1).await;
    let mut all = V4::connect(b.tcp(), "all", |_| {}).await;
    all.subscribe("#", Q4::AtMostOnce).await;
    let mut sys = V4::connect(b.tcp(), "sys", |_| {}).await;
    sys.subscribe("$SYS/broker/#", Q4::AtMostOnce).await;

    let wanted = [
        "uptime",
        "clients/connected",
        "messages/received",
        "messages/sent",
        "bytes/received",
        "bytes/sent",
        "subscriptions/count",
    ];
    let mut latest: HashMap<String, String> = HashMap::new();
    // Until a round taken after both clients connected has arrived.
    while !wanted.iter().all(|t| latest.contains_key(*t))
        || latest["clients/connected"].parse::<u64>().unwrap_or(0) < 2
        || latest["subscriptions/count"].parse::<u64>().unwrap_or(0) < 2
    {
        let p = sys.publish().await;
        let topic = p
            .topic
            .strip_prefix("$SYS/broker/")
            .expect("under $SYS/broker")
            .to_owned();
        latest.insert(topic, String::from_utf8(p.payload.to_vec()).unwrap());
    }
    let uptime = latest["uptime"].split_whitespace().next().unwrap();
    assert!(uptime.parse::<u64>().is_ok(), "{latest:?}");
    for t in ["bytes/received", "bytes/sent", "messages/sent"] {
        assert!(latest[t].parse::<u64>().is_ok(), "{t}: {latest:?}");
    }
    all.no_publish().await;
}

/// `/healthz` and `/readyz` answer 200 while serving; `/metrics` counts packets, bytes
/// and messages with bounded labels.
#[tokio::test]
async fn metrics_and_health_endpoints() {
    let b = TestBroker::start().await;
    assert_eq!(http_get(b.metrics_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(b.metrics_addr, "/readyz").await.0, 200);
    let mut sub = V4::connect(b.tcp(), "sub", |_| {}).await;
    sub.subscribe("m", Q4::AtLeastOnce).await;
    sub.client
        .publish("m", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    sub.publish().await;
    let samples = b.metrics().await;
    let get = |name: &str, labels: &[(&str, &str)]| sum(&samples, name, labels);
    assert_eq!(get("robustmq_connections_active", &[]), 1.0);
    assert!(
        get(
            "robustmq_packets_received_total",
            &[("packet_type", "connect"), ("version", "3.1.1")]
        ) >= 1.0
    );
    assert!(
        get(
            "robustmq_packets_received_total",
            &[("packet_type", "subscribe")]
        ) >= 1.0
    );
    assert!(get("robustmq_packets_sent_total", &[("packet_type", "connack")]) >= 1.0);
    assert!(get("robustmq_messages_received_total", &[("qos", "1")]) >= 1.0);
    assert!(get("robustmq_messages_delivered_total", &[("qos", "1")]) >= 1.0);
    // The publish was acknowledged, and the CONNECT answered, each observed once.
    assert_eq!(
        get("robustmq_publish_ack_seconds_count", &[("qos", "1")]),
        1.0
    );
    assert_eq!(
        get("robustmq_publish_ack_seconds_count", &[("qos", "2")]),
        0.0
    );
    assert_eq!(get("robustmq_connect_seconds_count", &[]), 1.0);
    assert!(get("robustmq_bytes_received_total", &[("listener", "tcp")]) > 0.0);
    assert_eq!(get("robustmq_subscriptions", &[]), 1.0);
    // Client ids and topics never become labels.
    for s in &samples {
        assert!(
            s.labels.values().all(|v| v != "sub" && v != "m"),
            "client id or topic as a label: {s:?}"
        );
    }
}

/// Shutdown stops accepting, tells MQTT 5 clients why (DISCONNECT 0x8B), closes 3.1.1
/// clients, publishes wills (the server closed the connection) and returns.
#[tokio::test]
async fn graceful_shutdown_disconnects_clients_and_publishes_wills() {
    let b = TestBroker::start().await;
    let mut v5 = Raw::connected(b.tcp(), ProtocolVersion::V5, "v5-client").await;
    let mut with_will = connect_packet(ProtocolVersion::V3_1_1, "v4-will");
    with_will.will = Some(LastWill {
        topic: "wills/v4".into(),
        payload: bytes::Bytes::from_static(b"bye"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut v4, _) = Raw::connect(b.tcp(), with_will).await;
    let mut rumq = V4::connect(b.tcp(), "rumqttc", |_| {}).await;
    let tcp = b.tcp();
    let broker = b.broker.clone();
    let wills_before = broker.metrics.will_published.get();

    b.trigger_shutdown();
    v5.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN).await;
    let seen = v4.closed().await;
    assert!(
        seen.iter().all(|p| !matches!(p, Packet::Disconnect(_))),
        "{seen:?}"
    );
    rumq.events.closed().await;
    b.wait_stopped().await;
    assert_eq!(
        broker.metrics.will_published.get(),
        wills_before + 1,
        "the will went out"
    );
    // The listener is gone: a new client cannot talk MQTT any more.
    if let Ok(stream) = tokio::net::TcpStream::connect(tcp).await {
        let mut late = Raw::over(Box::new(stream), ProtocolVersion::V3_1_1);
        late.send(Packet::Connect(Box::new(connect_packet(
            ProtocolVersion::V3_1_1,
            "late",
        ))))
        .await;
        assert!(late.closed().await.is_empty(), "no CONNACK after shutdown");
    }
}

/// A client that never stops sending keeps its connection's read ready on every loop
/// turn, and the loop polls shutdown after it: shutdown must still close that connection
/// (tokio's cooperative budget makes the read pending now and then) and return.
#[tokio::test]
async fn shutdown_closes_a_client_that_floods() {
    let b = TestBroker::start().await;
    let mut watcher = Raw::connected(b.tcp(), ProtocolVersion::V5, "watcher").await;
    let mut flooder = Raw::connected(b.tcp(), ProtocolVersion::V3_1_1, "flooder").await;
    let mut chunk = bytes::BytesMut::new();
    for _ in 0..1000 {
        let publish = publish_packet("flood/t", QoS::AtMostOnce, None, b"0123456789abcdef");
        mqtt_codec::encode(&publish, ProtocolVersion::V3_1_1, &mut chunk).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                flooder.send_bytes(&chunk).await;
            }
        }
    });
    // Flooding for real before the shutdown: the broker has counted received messages.
    b.metric_reaches(
        "robustmq_messages_received_total",
        &[("qos", "0")],
        10_000.0,
    )
    .await;
    b.trigger_shutdown();
    watcher
        .expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN)
        .await;
    b.wait_stopped().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooding.await.unwrap();
}

/// A retained message sent at subscribe time counts as delivered, but its age since it
/// was published is no delivery latency: `robustmq_message_latency_seconds` leaves it out.
#[tokio::test]
async fn retained_replays_are_not_latency_samples() {
    let b = TestBroker::start().await;
    let mut live = V4::connect(b.tcp(), "live", |_| {}).await;
    live.subscribe("kept", Q4::AtLeastOnce).await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("kept", Q4::AtLeastOnce, true, "old")
        .await
        .unwrap();
    assert!(!live.publish().await.retain, "the live delivery");
    let mut late = V4::connect(b.tcp(), "late", |_| {}).await;
    late.subscribe("kept", Q4::AtLeastOnce).await;
    assert!(late.publish().await.retain, "the retained replay");
    let samples = b.metrics().await;
    let get = |name: &str| sum(&samples, name, &[("qos", "1")]);
    assert_eq!(get("robustmq_messages_delivered_total"), 2.0);
    assert_eq!(get("robustmq_message_latency_seconds_count"), 1.0);
}

/// `telemetry.metrics_enabled = false` (the switch the overhead benchmark uses): the
/// broker works, `/metrics` keeps the process metrics and exports none of the broker's.
#[tokio::test]
async fn metrics_can_be_switched_off() {
    let b = TestBroker::with(|c| c.telemetry.metrics_enabled = false).await;
    let mut sub = V4::connect(b.tcp(), "sub", |_| {}).await;
    sub.subscribe("t", Q4::AtLeastOnce).await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("t", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(&sub.publish().await.payload[..], b"x");
    let samples = b.metrics().await;
    assert!(samples
        .iter()
        .any(|s| s.name == "process_cpu_seconds_total"));
    let broker: Vec<&str> = samples
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| {
            n.starts_with("robustmq_")
                && !n.starts_with("robustmq_build_info")
                && !n.starts_with("robustmq_tokio_")
        })
        .collect();
    assert!(broker.is_empty(), "exported with metrics off: {broker:?}");
}
