//! Bad input over raw sockets: each case closes *that* connection with the reason code
//! the spec asks for (MQTT 5 DISCONNECT or CONNACK), is counted in
//! `robustmq_packets_received_error_total`, and leaves the broker serving a second,
//! well-behaved client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{
    Auth, AuthProperties, ConnAck, Connect, Packet, ProtocolVersion, PubResponse, Publish,
    PublishProperties, QoS, ReasonCode, SubscriptionOptions,
};

use crate::harness::*;

/// What the bad client sends after its CONNECT.
enum Bad {
    Packet(Box<Packet>),
    Bytes(Vec<u8>),
}

fn bad(p: Packet) -> Bad {
    Bad::Packet(Box::new(p))
}

/// Connects (`tweak` adjusts the CONNECT), sends `bad`, expects the close with
/// `reason` (MQTT 5: after a DISCONNECT carrying it), the error counter to go up, and
/// a healthy broker afterwards.
async fn rejects(
    b: &TestBroker,
    version: ProtocolVersion,
    tweak: impl FnOnce(&mut Connect),
    bad: Bad,
    reason: ReasonCode,
) {
    let before = b.metric(ERRORS, &[]).await;
    let mut connect = connect_packet(version, "bad-client");
    tweak(&mut connect);
    let (mut c, connack) = Raw::connect(b.tcp(), connect).await;
    assert_eq!(connack.reason_code, ReasonCode::SUCCESS);
    match bad {
        Bad::Packet(p) => c.send(*p).await,
        Bad::Bytes(bytes) => c.send_bytes(&bytes).await,
    }
    c.expect_disconnect(reason).await;
    b.metric_reaches(ERRORS, &[], before + 1.0).await;
    b.assert_healthy().await;
}

/// Hand-encodes a remaining length.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// A hand-written PUBLISH, for what the codec refuses to encode.
fn raw_publish(
    header: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    v5: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    let mut out = vec![header];
    varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// A hand-written CONNECT with any protocol name and level.
fn raw_connect(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, 0x02, 0x00, 0x3C]);
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(&[0x00, 0x01, b'c']);
    let mut out = vec![0x10];
    varint(body.len(), &mut out);
    out.extend(body);
    out
}

fn publish(topic: &str, qos: QoS, id: Option<u16>, properties: PublishProperties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: id,
        payload: Bytes::from_static(b"x"),
        properties,
    })
}

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn malformed_packets_close_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        // Reserved packet type 0.
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(vec![0x00, 0x00]),
            ReasonCode::MALFORMED_PACKET,
        )
        .await;
        // A remaining length of five bytes.
        let too_long = vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(too_long),
            ReasonCode::MALFORMED_PACKET,
        )
        .await;
        // SUBSCRIBE with the wrong fixed-header flags [MQTT-3.8.1-1].
        let bad_flags = vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00];
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(bad_flags),
            ReasonCode::MALFORMED_PACKET,
        )
        .await;
        // QoS 3 [MQTT-3.3.1-4].
        let qos3 = raw_publish(0x36, b"t", Some(1), version.is_v5(), b"x");
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(qos3),
            ReasonCode::MALFORMED_PACKET,
        )
        .await;
    }
}

/// [MQTT-1.5.3-1] / [MQTT-1.5.4-1]: ill-formed UTF-8 (or U+0000) in a topic is a
/// malformed packet.
#[tokio::test]
async fn invalid_utf8_topics_close_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        for topic in [&b"a/\xC3\x28"[..], b"a\x00b", b"\xED\xA0\x80"] {
            let bytes = raw_publish(0x30, topic, None, version.is_v5(), b"x");
            rejects(
                &b,
                version,
                |_| {},
                Bad::Bytes(bytes),
                ReasonCode::MALFORMED_PACKET,
            )
            .await;
        }
    }
}

/// [MQTT-2.3.1-1]: QoS > 0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE need a non-zero packet id.
#[tokio::test]
async fn packet_id_zero_closes_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        let bytes = raw_publish(0x32, b"t", Some(0), version.is_v5(), b"x");
        let before = b.metric(ERRORS, &[]).await;
        let (mut c, _) = Raw::connect(b.tcp(), connect_packet(version, "zero-id")).await;
        c.send_bytes(&bytes).await;
        let seen = c.closed().await;
        if version.is_v5() {
            match seen.last() {
                Some(Packet::Disconnect(d)) => assert!(
                    [ReasonCode::MALFORMED_PACKET, ReasonCode::PROTOCOL_ERROR]
                        .contains(&d.reason_code),
                    "{d:?}"
                ),
                other => panic!("expected DISCONNECT, got {other:?}"),
            }
        }
        b.metric_reaches(ERRORS, &[], before + 1.0).await;
    }
    b.assert_healthy().await;
}

/// [MQTT-3.3.2-2]: a PUBLISH topic must not contain wildcards (MQTT 5: 0x90).
#[tokio::test]
async fn publish_to_a_wildcard_topic_closes_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        for topic in [&b"a/+"[..], b"a/#"] {
            let bytes = raw_publish(0x30, topic, None, version.is_v5(), b"x");
            rejects(
                &b,
                version,
                |_| {},
                Bad::Bytes(bytes),
                ReasonCode::TOPIC_NAME_INVALID,
            )
            .await;
        }
    }
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation (MQTT 5: 0x82).
#[tokio::test]
async fn second_connect_closes_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        let again = Packet::Connect(Box::new(connect_packet(version, "again")));
        rejects(&b, version, |_| {}, bad(again), ReasonCode::PROTOCOL_ERROR).await;
    }
}

/// Packets only a server may send are protocol errors from a client.
#[tokio::test]
async fn server_packets_from_a_client_close_the_connection() {
    let b = TestBroker::start().await;
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties: Default::default(),
    });
    rejects(&b, V5, |_| {}, bad(connack), ReasonCode::PROTOCOL_ERROR).await;
    rejects(
        &b,
        V4,
        |_| {},
        bad(Packet::PingResp),
        ReasonCode::PROTOCOL_ERROR,
    )
    .await;
}

/// MQTT 3.1.1 [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK return code
/// 0x01 and the connection is closed; an unknown protocol name is closed.
#[tokio::test]
async fn wrong_protocol_name_or_level_is_refused() {
    let b = TestBroker::start().await;
    for level in [2, 6, 0x84] {
        let before = b.metric(ERRORS, &[]).await;
        let mut c = Raw::open(b.tcp(), V4).await;
        c.send_bytes(&raw_connect(b"MQTT", level)).await;
        let seen = c.closed().await;
        match seen.as_slice() {
            [Packet::ConnAck(a)] => {
                assert_eq!(a.reason_code.to_v3_connack(), 0x01, "level {level}");
                assert!(!a.session_present);
            }
            other => panic!("level {level}: expected CONNACK 0x01 then close, got {other:?}"),
        }
        b.metric_reaches(ERRORS, &[], before + 1.0).await;
    }
    for name in [&b"MQTX"[..], b"mqtt", b"MQIsdp\x00"] {
        let mut c = Raw::open(b.tcp(), V4).await;
        c.send_bytes(&raw_connect(name, 4)).await;
        let seen = c.closed().await;
        assert!(
            seen.iter()
                .all(|p| matches!(p, Packet::ConnAck(a) if !a.reason_code.is_success())),
            "{name:?}: {seen:?}"
        );
    }
    // Anything but CONNECT first [MQTT-3.1.0-1].
    let mut c = Raw::open(b.tcp(), V4).await;
    c.send(Packet::PingReq).await;
    assert!(c.closed().await.is_empty());
    b.assert_healthy().await;
}

/// MQTT 5 §3.1.2.11.4 / [MQTT-3.2.2-15]: a packet above our Maximum Packet Size gets
/// DISCONNECT 0x95 — decided from the fixed header, before the body is buffered.
#[tokio::test]
async fn oversize_packets_close_the_connection() {
    let b = TestBroker::with(|c| c.limits.max_packet_size = 1024).await;
    for version in [V4, V5] {
        let big = raw_publish(0x30, b"big", None, version.is_v5(), &[b'x'; 2000]);
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(big),
            ReasonCode::PACKET_TOO_LARGE,
        )
        .await;
        // Only the header of a 200 MB packet: refused without waiting for the body.
        let mut header = vec![0x30];
        varint(200_000_000, &mut header);
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(header),
            ReasonCode::PACKET_TOO_LARGE,
        )
        .await;
    }
}

/// MQTT 5 §3.3.2.3.4: topic alias 0 or above our Topic Alias Maximum is 0x94; an alias
/// that was never set up is a protocol error.
#[tokio::test]
async fn invalid_topic_aliases_close_the_connection() {
    let b = TestBroker::with(|c| c.limits.topic_alias_maximum = 4).await;
    let alias = |topic: &str, n| {
        publish(
            topic,
            QoS::AtMostOnce,
            None,
            PublishProperties {
                topic_alias: Some(n),
                ..Default::default()
            },
        )
    };
    // Alias 0 [MQTT-3.3.2-8]: 0x94, as conformance suites expect.
    let before = b.metric(ERRORS, &[]).await;
    let (mut c, _) = Raw::connect(b.tcp(), connect_packet(V5, "alias-zero")).await;
    c.send(alias("t", 0)).await;
    match c.closed().await.last() {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, ReasonCode::TOPIC_ALIAS_INVALID, "{d:?}")
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    b.metric_reaches(ERRORS, &[], before + 1.0).await;
    rejects(
        &b,
        V5,
        |_| {},
        bad(alias("t", 5)),
        ReasonCode::TOPIC_ALIAS_INVALID,
    )
    .await;
    rejects(
        &b,
        V5,
        |_| {},
        bad(alias("", 3)),
        ReasonCode::PROTOCOL_ERROR,
    )
    .await;
    // An empty topic without an alias.
    rejects(
        &b,
        V5,
        |_| {},
        Bad::Bytes(raw_publish(0x30, b"", None, true, b"x")),
        ReasonCode::PROTOCOL_ERROR,
    )
    .await;
}

/// MQTT 5 §3.3.4 / [MQTT-3.3.4-9]: more unacknowledged QoS 2 PUBLISHes than our Receive
/// Maximum is 0x93.
#[tokio::test]
async fn exceeding_our_receive_maximum_closes_the_connection() {
    let b = TestBroker::with(|c| c.limits.receive_maximum = 2).await;
    let q2 = |id| publish("rm", QoS::ExactlyOnce, Some(id), Default::default());
    let before = b.metric(ERRORS, &[]).await;
    let (mut c, connack) = Raw::connect(b.tcp(), connect_packet(V5, "greedy")).await;
    assert_eq!(connack.properties.receive_maximum, Some(2));
    for id in 1..=2 {
        c.send(q2(id)).await;
        assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == id));
    }
    // Releasing one makes room again.
    c.send(Packet::PubRel(PubResponse::new(1))).await;
    assert!(matches!(c.recv().await, Some(Packet::PubComp(_))));
    c.send(q2(3)).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 3));
    c.send(q2(4)).await;
    c.expect_disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        .await;
    b.metric_reaches(ERRORS, &[], before + 1.0).await;
    b.assert_healthy().await;
}

/// MQTT 5 [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
#[tokio::test]
async fn no_local_on_a_shared_subscription_closes_the_connection() {
    let b = TestBroker::start().await;
    let options = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    let sub = subscribe_packet(1, "$share/g/t", options, None);
    rejects(&b, V5, |_| {}, bad(sub), ReasonCode::PROTOCOL_ERROR).await;
}

/// MQTT 5 §4.12: we offer no enhanced authentication. A CONNECT with an Authentication
/// Method gets CONNACK 0x8C; an AUTH packet without one is a protocol error (0x82).
#[tokio::test]
async fn enhanced_authentication_is_refused_cleanly() {
    let b = TestBroker::start().await;
    let auth = Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: AuthProperties {
            authentication_method: Some("SCRAM-SHA-1".into()),
            ..Default::default()
        },
    });
    rejects(&b, V5, |_| {}, bad(auth), ReasonCode::PROTOCOL_ERROR).await;

    let mut connect = connect_packet(V5, "scram");
    connect.properties.authentication_method = Some("SCRAM-SHA-1".into());
    connect.properties.authentication_data = Some(Bytes::from_static(b"client-first"));
    let (mut c, connack) = Raw::connect(b.tcp(), connect).await;
    assert_eq!(connack.reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert!(c.closed().await.is_empty());
    b.assert_healthy().await;
}

/// MQTT 5 §3.2.2.3.4 / §3.2.2.3.5: a PUBLISH above our Maximum QoS is 0x9B, a retained
/// PUBLISH when retain is unavailable 0x9A; §3.8.2.1.2: a Subscription Identifier when
/// we do not support them 0xA1.
#[tokio::test]
async fn using_unavailable_features_closes_the_connection() {
    let b = TestBroker::with(|c| {
        c.limits.maximum_qos = 1;
        c.limits.retain_available = false;
        c.limits.subscription_identifiers_available = false;
    })
    .await;
    let q2 = publish("t", QoS::ExactlyOnce, Some(1), Default::default());
    rejects(&b, V5, |_| {}, bad(q2), ReasonCode::QOS_NOT_SUPPORTED).await;
    let mut retained = publish("t", QoS::AtMostOnce, None, Default::default());
    if let Packet::Publish(p) = &mut retained {
        p.retain = true;
    }
    rejects(
        &b,
        V5,
        |_| {},
        bad(retained),
        ReasonCode::RETAIN_NOT_SUPPORTED,
    )
    .await;
    let with_id = subscribe_packet(1, "t", SubscriptionOptions::default(), Some(7));
    rejects(
        &b,
        V5,
        |_| {},
        bad(with_id),
        ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    )
    .await;
}

/// MQTT 5 §3.1.2.11.3 / §3.1.2.11.4: Receive Maximum 0 or Maximum Packet Size 0 in
/// CONNECT is a protocol error, answered with CONNACK 0x82.
#[tokio::test]
async fn zero_limits_in_connect_are_refused() {
    let b = TestBroker::start().await;
    for tweak in [
        (|c: &mut Connect| c.properties.receive_maximum = Some(0)) as fn(&mut Connect),
        |c: &mut Connect| c.properties.maximum_packet_size = Some(0),
    ] {
        let mut connect = connect_packet(V5, "zeros");
        tweak(&mut connect);
        // The server MAY answer a bad CONNECT with a CONNACK before closing (§4.13.1).
        let mut c = Raw::open(b.tcp(), V5).await;
        c.send(Packet::Connect(Box::new(connect))).await;
        let seen = c.closed().await;
        assert!(
            seen.is_empty()
                || matches!(seen.as_slice(), [Packet::ConnAck(a)] if a.reason_code == ReasonCode::PROTOCOL_ERROR),
            "{seen:?}"
        );
    }
    b.assert_healthy().await;
}

/// A connection that never sends CONNECT is closed after the connect timeout and counted.
#[tokio::test]
async fn connect_timeout_closes_silent_connections() {
    let b = TestBroker::with(|c| c.limits.connect_timeout_secs = 1).await;
    let before = b.metric(ERRORS, &[("reason", "connect_timeout")]).await;
    let started = Instant::now();
    let mut silent = Raw::open(b.tcp(), V5).await;
    // Half a packet does not count as CONNECT either.
    let mut half = Raw::open(b.tcp(), V5).await;
    half.send_bytes(&raw_connect(b"MQTT", 5)[..5]).await;
    assert!(silent.closed().await.is_empty());
    assert!(half.closed().await.is_empty());
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "{after:?}"
    );
    b.metric_reaches(ERRORS, &[("reason", "connect_timeout")], before + 2.0)
        .await;
    b.assert_healthy().await;
}

/// Many bad clients at once do not disturb a client in the middle of a conversation.
#[tokio::test]
async fn bad_clients_do_not_disturb_good_ones() {
    let b = TestBroker::start().await;
    let mut good = Raw::connected(b.tcp(), V5, "good").await;
    good.subscribe("good/#", qos_opts(QoS::AtLeastOnce), None)
        .await;
    let mut bad = Vec::new();
    for i in 0..20u8 {
        let mut c = Raw::connected(b.tcp(), V5, &format!("bad-{i}")).await;
        c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, i]).await;
        bad.push(c);
    }
    for c in &mut bad {
        c.expect_disconnect(ReasonCode::MALFORMED_PACKET).await;
    }
    good.send(publish(
        "good/1",
        QoS::AtLeastOnce,
        Some(1),
        Default::default(),
    ))
    .await;
    let mut got = (false, false);
    for _ in 0..2 {
        match good.recv().await {
            Some(Packet::PubAck(_)) => got.0 = true,
            Some(Packet::Publish(p)) => {
                assert_eq!(&*p.topic, "good/1");
                got.1 = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, (true, true));
}

/// A hand-written SUBSCRIBE (flags 0b0010) with packet id 1 and one filter `a` with
/// `options`, or no filter at all.
fn raw_subscribe(v5: bool, options: Option<u8>) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if v5 {
        body.push(0);
    }
    if let Some(options) = options {
        body.extend_from_slice(&[0x00, 0x01, b'a', options]);
    }
    let mut out = vec![0x82];
    varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// A SUBSCRIBE without filters, with QoS 3 or with Retain Handling 3, and an
/// UNSUBSCRIBE without filters, are MQTT 5 Protocol Errors ([MQTT-3.8.3-2], §3.8.3.1,
/// [MQTT-3.10.3-2]); reserved option bits make a malformed packet [MQTT-3.8.3-5]. In
/// 3.1.1 all of them are malformed and just close the connection.
#[tokio::test]
async fn malformed_subscribe_and_unsubscribe_close_the_connection() {
    let b = TestBroker::start().await;
    for version in [V4, V5] {
        let v5 = version.is_v5();
        let (protocol_error, malformed) =
            (ReasonCode::PROTOCOL_ERROR, ReasonCode::MALFORMED_PACKET);
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(raw_subscribe(v5, None)),
            protocol_error,
        )
        .await;
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(raw_subscribe(v5, Some(0x03))),
            protocol_error,
        )
        .await;
        let reserved = if v5 { 0xC1 } else { 0x05 };
        rejects(
            &b,
            version,
            |_| {},
            Bad::Bytes(raw_subscribe(v5, Some(reserved))),
            malformed,
        )
        .await;
        let mut unsubscribe = vec![0xA2, if v5 { 3 } else { 2 }, 0x00, 0x01];
        if v5 {
            unsubscribe.push(0);
        }
        rejects(&b, version, |_| {}, Bad::Bytes(unsubscribe), protocol_error).await;
    }
    let retain_handling_3 = raw_subscribe(true, Some(0x31));
    rejects(
        &b,
        V5,
        |_| {},
        Bad::Bytes(retain_handling_3),
        ReasonCode::PROTOCOL_ERROR,
    )
    .await;
}

/// Connections beyond `limits.max_connections` are refused at accept (and counted), so
/// memory stays bounded; the ones already connected keep working.
#[tokio::test]
async fn connection_limit_refuses_extra_connections() {
    let b = TestBroker::with(|c| c.limits.max_connections = 2).await;
    let mut first = V4::connect(b.tcp(), "first", |_| {}).await;
    let second = V4::connect(b.tcp(), "second", |_| {}).await;
    let before = b.metric(ERRORS, &[("reason", "connection_limit")]).await;
    let mut third = Raw::open(b.tcp(), V4).await;
    third
        .send(Packet::Connect(Box::new(connect_packet(V4, "third"))))
        .await;
    assert!(
        third.closed().await.is_empty(),
        "no CONNACK beyond the limit"
    );
    b.metric_reaches(ERRORS, &[("reason", "connection_limit")], before + 1.0)
        .await;
    first.subscribe("limit", rumqttc::QoS::AtLeastOnce).await;
    second
        .client
        .publish("limit", rumqttc::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    first.publish().await;
}
