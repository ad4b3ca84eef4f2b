//! Sessions and connections: clean session / clean start, persistent sessions queueing
//! QoS 1/2 while offline (bounded), in-flight resend with DUP on reconnect, MQTT 5
//! session expiry, keep-alive (1.5×) and Server Keep Alive, assigned client
//! identifiers, and session takeover.

use std::time::{Duration, Instant};

use mqtt_codec::{
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode,
};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

fn persistent(o: &mut rumqttc::MqttOptions) {
    o.set_clean_session(false);
}

/// MQTT 3.1.1 §3.1.2.4: Clean Session 0 resumes the session (Session Present 1, the
/// subscriptions survive); Clean Session 1 discards it.
#[tokio::test]
async fn v311_clean_session_discards_and_persistent_session_resumes() {
    let b = TestBroker::start().await;
    let mut c = V4::connect(b.tcp(), "keeper", persistent).await;
    assert!(!c.connack.session_present);
    c.subscribe("keep/#", Q4::AtLeastOnce).await;
    c.disconnect().await;

    let mut c = V4::connect(b.tcp(), "keeper", persistent).await;
    assert!(c.connack.session_present, "persistent session resumed");
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("keep/1", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(
        c.publish().await.topic,
        "keep/1",
        "the subscription survived"
    );
    c.disconnect().await;

    let c = V4::connect(b.tcp(), "keeper", |_| {}).await;
    assert!(!c.connack.session_present, "clean session starts afresh");
    c.disconnect().await;
    let mut c = V4::connect(b.tcp(), "keeper", persistent).await;
    assert!(
        !c.connack.session_present,
        "the clean session discarded the old one"
    );
    publisher
        .client
        .publish("keep/2", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    c.no_publish().await;
}

/// MQTT 3.1.1 §4.1: a disconnected persistent session keeps receiving QoS 1 and 2
/// messages (QoS 0 may be dropped), delivered in order on reconnect.
#[tokio::test]
async fn offline_persistent_session_queues_qos1_and_qos2() {
    let b = TestBroker::start().await;
    let mut c = V4::connect(b.tcp(), "sleeper", persistent).await;
    c.subscribe("mail/#", Q4::ExactlyOnce).await;
    c.disconnect().await;

    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("mail/0", Q4::AtMostOnce, false, "q0")
        .await
        .unwrap();
    publisher
        .client
        .publish("mail/1", Q4::AtLeastOnce, false, "q1")
        .await
        .unwrap();
    publisher
        .client
        .publish("mail/2", Q4::ExactlyOnce, false, "q2")
        .await
        .unwrap();
    publisher.disconnect().await;

    let mut c = V4::connect(b.tcp(), "sleeper", persistent).await;
    assert!(c.connack.session_present);
    let (one, two) = (c.publish().await, c.publish().await);
    assert_eq!((one.topic.as_str(), one.qos), ("mail/1", Q4::AtLeastOnce));
    assert_eq!((two.topic.as_str(), two.qos), ("mail/2", Q4::ExactlyOnce));
    c.no_publish().await;
}

/// The offline queue is bounded by `limits.max_queued_messages`; the excess is dropped
/// and counted as `robustmq_messages_dropped_total{reason="queue_full"}`.
#[tokio::test]
async fn offline_queue_is_bounded_and_drops_are_counted() {
    let b = TestBroker::with(|c| c.limits.max_queued_messages = 3).await;
    let mut c = V4::connect(b.tcp(), "bounded", persistent).await;
    c.subscribe("flood", Q4::AtLeastOnce).await;
    c.disconnect().await;

    let mut publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..5 {
        publisher
            .client
            .publish("flood", Q4::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        publisher
            .events
            .find("PUBACK", |p| {
                matches!(p, rumqttc::Packet::PubAck(_)).then_some(())
            })
            .await;
    }
    let dropped = b
        .metric(
            "robustmq_messages_dropped_total",
            &[("reason", "queue_full")],
        )
        .await;
    assert_eq!(dropped, 2.0);

    let mut c = V4::connect(b.tcp(), "bounded", persistent).await;
    for i in 0..3 {
        assert_eq!(
            c.publish().await.payload,
            format!("{i}").as_bytes(),
            "the oldest are kept"
        );
    }
    c.no_publish().await;
}

/// MQTT 3.1.1 §4.4 / MQTT 5 §4.4: on reconnect with a resumed session the server resends
/// unacknowledged PUBLISH packets with DUP = 1 and the same packet id, and PUBREL for
/// QoS 2 messages whose PUBCOMP is missing.
#[tokio::test]
async fn unacknowledged_deliveries_are_resent_on_reconnect() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut connect = connect_packet(version, "resume");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = version.is_v5().then_some(300);
        let (mut c, _) = Raw::connect(b.tcp(), connect.clone()).await;
        c.subscribe("inflight/#", qos_opts(QoS::ExactlyOnce), None)
            .await;

        let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
        publisher
            .client
            .publish("inflight/1", Q4::AtLeastOnce, false, "q1")
            .await
            .unwrap();
        publisher
            .client
            .publish("inflight/2", Q4::ExactlyOnce, false, "q2")
            .await
            .unwrap();
        let p1 = c.publish().await;
        let p2 = c.publish().await;
        assert_eq!((p1.qos, p2.qos), (QoS::AtLeastOnce, QoS::ExactlyOnce));
        let (id1, id2) = (p1.packet_id.unwrap(), p2.packet_id.unwrap());
        assert!(!p1.dup && !p2.dup);
        c.send(Packet::PubRec(PubResponse::new(id2))).await;
        match c.recv().await {
            Some(Packet::PubRel(r)) => assert_eq!(r.packet_id, id2),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        drop(c); // no PUBACK for q1, no PUBCOMP for q2

        let (mut c, connack) = Raw::connect(b.tcp(), connect.clone()).await;
        assert!(connack.session_present, "{version:?}");
        let mut resent_publish = None;
        let mut resent_pubrel = None;
        for _ in 0..2 {
            match c.recv().await {
                Some(Packet::Publish(p)) => resent_publish = Some(p),
                Some(Packet::PubRel(r)) => resent_pubrel = Some(r.packet_id),
                other => panic!("expected the resend, got {other:?}"),
            }
        }
        let p = resent_publish.expect("PUBLISH resent");
        assert_eq!(
            (p.dup, p.packet_id, &p.payload[..]),
            (true, Some(id1), &b"q1"[..]),
            "{version:?}"
        );
        assert_eq!(resent_pubrel, Some(id2), "{version:?}");
        c.send(Packet::PubAck(PubResponse::new(id1))).await;
        c.send(Packet::PubComp(PubResponse::new(id2))).await;
        c.nothing().await;
        drop(c);
        // Once acknowledged, nothing is resent.
        let (mut c, _) = Raw::connect(b.tcp(), connect).await;
        c.nothing().await;
        c.send(Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: DisconnectProperties {
                session_expiry_interval: version.is_v5().then_some(0),
                ..Default::default()
            },
        }))
        .await;
        c.closed().await;
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// MQTT 5 §3.1.2.11.2: the session lives Session Expiry Interval seconds after the
/// connection closes, then it is gone.
#[tokio::test]
async fn v5_session_expires_after_its_interval() {
    let b = TestBroker::start().await;
    let expiring = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(1));
    };
    let mut c = V5::connect(b.tcp(), "brief", expiring).await;
    c.subscribe("brief/#", Q5::AtLeastOnce).await;
    c.disconnect().await;
    let c = V5::connect(b.tcp(), "brief", expiring).await;
    assert!(
        c.connack.session_present,
        "within the interval the session is there"
    );
    c.disconnect().await;
    let closed_at = Instant::now();
    let broker = b.broker.clone();
    wait_until("the session expired", || broker.sessions.is_empty()).await;
    assert!(
        closed_at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        closed_at.elapsed()
    );
    let c = V5::connect(b.tcp(), "brief", expiring).await;
    assert!(!c.connack.session_present, "expired");
}

/// MQTT 5 §3.14.2.2.2: DISCONNECT may lower the Session Expiry Interval (here to 0, so
/// the session ends now), but raising it from 0 is a Protocol Error [MQTT-3.14.2-2].
#[tokio::test]
async fn v5_disconnect_changes_session_expiry() {
    let b = TestBroker::start().await;
    let mut connect = connect_packet(ProtocolVersion::V5, "shrinks");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut c, _) = Raw::connect(b.tcp(), connect.clone()).await;
    let disconnect = |expiry| {
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: DisconnectProperties {
                session_expiry_interval: Some(expiry),
                ..Default::default()
            },
        })
    };
    c.send(disconnect(0)).await;
    c.closed().await;
    let (_c, connack) = Raw::connect(b.tcp(), connect).await;
    assert!(
        !connack.session_present,
        "expiry 0 at DISCONNECT ended the session"
    );

    let (mut c, _) = Raw::connect(b.tcp(), connect_packet(ProtocolVersion::V5, "grows")).await;
    c.send(disconnect(60)).await;
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
}

/// MQTT 3.1.1 §3.1.2.10 / MQTT 5 §3.1.2.10: with no packet for 1.5 × Keep Alive the
/// server closes the connection (MQTT 5: DISCONNECT 0x8D first) and publishes the will.
#[tokio::test]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alives() {
    let b = TestBroker::start().await;
    let mut watcher = V4::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("ka/#", Q4::AtLeastOnce).await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut connect = connect_packet(version, "silent");
        connect.keep_alive = 1;
        connect.will = Some(mqtt_codec::LastWill {
            topic: "ka/will".into(),
            payload: bytes::Bytes::from_static(b"timed out"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        });
        let started = Instant::now();
        let (mut c, _) = Raw::connect(b.tcp(), connect).await;
        c.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT).await;
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(1400) && after < Duration::from_secs(5),
            "{version:?}: closed after {after:?}, expected about 1.5 s"
        );
        assert_eq!(&watcher.publish().await.payload[..], b"timed out");
    }
}

/// A client that keeps talking within its keep alive stays connected.
#[tokio::test]
async fn pinging_client_stays_connected() {
    let b = TestBroker::start().await;
    let mut connect = connect_packet(ProtocolVersion::V3_1_1, "pinger");
    connect.keep_alive = 1;
    let (mut c, _) = Raw::connect(b.tcp(), connect).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send(Packet::PingReq).await;
        assert_eq!(c.recv().await, Some(Packet::PingResp));
    }
}

/// MQTT 5 §3.2.2.3.14: the server may impose its own keep alive (Server Keep Alive in
/// CONNACK), and then enforces that one.
#[tokio::test]
async fn v5_server_keep_alive_overrides_the_client() {
    let b = TestBroker::with(|c| c.limits.max_keep_alive_secs = 1).await;
    for asked in [60, 0] {
        let mut connect = connect_packet(ProtocolVersion::V5, "ka-asks");
        connect.keep_alive = asked;
        let started = Instant::now();
        let (mut c, connack) = Raw::connect(b.tcp(), connect).await;
        assert_eq!(
            connack.properties.server_keep_alive,
            Some(1),
            "asked {asked}"
        );
        c.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "asked {asked}: {:?}",
            started.elapsed()
        );
    }
    // Within the limit, nothing is imposed.
    let mut connect = connect_packet(ProtocolVersion::V5, "ka-ok");
    connect.keep_alive = 1;
    let (_c, connack) = Raw::connect(b.tcp(), connect).await;
    assert_eq!(connack.properties.server_keep_alive, None);
}

/// MQTT 5 §3.2.2.3.7: an empty client id gets an Assigned Client Identifier; MQTT 3.1.1
/// §3.1.3.1 accepts an empty id only with Clean Session 1 (else return code 0x02), and
/// MQTT 3.1 requires an id.
#[tokio::test]
async fn empty_client_ids_are_assigned_or_refused() {
    let b = TestBroker::start().await;
    let (_a, first) = Raw::connect(b.tcp(), connect_packet(ProtocolVersion::V5, "")).await;
    let (_b, second) = Raw::connect(b.tcp(), connect_packet(ProtocolVersion::V5, "")).await;
    let id1 = first
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    let id2 = second
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id1.is_empty() && id1 != id2, "{id1} {id2}");

    let mut anon = V4::connect(b.tcp(), "", |_| {}).await;
    assert_eq!(anon.connack.code, rumqttc::ConnectReturnCode::Success);
    anon.subscribe("anon", Q4::AtLeastOnce).await;
    anon.client
        .publish("anon", Q4::AtLeastOnce, false, "me")
        .await
        .unwrap();
    assert_eq!(&anon.publish().await.payload[..], b"me");

    let mut connect = connect_packet(ProtocolVersion::V3_1_1, "");
    connect.clean_start = false;
    let (mut c, connack) = Raw::connect(b.tcp(), connect).await;
    assert_eq!(
        connack.reason_code.to_v3_connack(),
        0x02,
        "identifier rejected"
    );
    assert!(c.closed().await.is_empty());

    let (mut c, connack) = Raw::connect(b.tcp(), connect_packet(ProtocolVersion::V3_1, "")).await;
    assert_eq!(
        connack.reason_code.to_v3_connack(),
        0x02,
        "3.1 needs a client id"
    );
    assert!(c.closed().await.is_empty());
}

/// MQTT 3.1.1 [MQTT-3.1.4-2] / MQTT 5 §3.1.4: a second CONNECT with the same client id
/// takes over: the first connection is closed (MQTT 5: DISCONNECT 0x8E first) and a
/// persistent session moves to the new connection.
#[tokio::test]
async fn session_takeover_closes_the_first_connection() {
    let b = TestBroker::start().await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;

    // Raw, to see the DISCONNECT: rumqttc 0.25 cannot parse a DISCONNECT that carries a
    // reason code but no property length (legal, §3.14.2.2.1) and reports an abort.
    let mut connect = connect_packet(ProtocolVersion::V5, "twin");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let (mut first, _) = Raw::connect(b.tcp(), connect.clone()).await;
    first
        .subscribe("twin/#", qos_opts(QoS::AtLeastOnce), None)
        .await;
    let mut second = V5::connect(b.tcp(), "twin", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    })
    .await;
    assert!(second.connack.session_present);
    first
        .expect_disconnect(ReasonCode::SESSION_TAKEN_OVER)
        .await;
    publisher
        .client
        .publish("twin/x", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(
        &second.publish().await.topic[..],
        b"twin/x",
        "the subscription moved along"
    );

    let mut old = V4::connect(b.tcp(), "twin4", |_| {}).await;
    let mut new = V4::connect(b.tcp(), "twin4", |_| {}).await;
    old.events.closed().await;
    new.subscribe("t4", Q4::AtMostOnce).await;
    publisher
        .client
        .publish("t4", Q4::AtMostOnce, false, "x")
        .await
        .unwrap();
    new.publish().await;
}

/// MQTT 5 §3.1.4: the taken-over connection's will is published; deliveries it left
/// unacknowledged are resent (DUP = 1) on the connection that took the session over.
#[tokio::test]
async fn takeover_publishes_the_will_and_moves_in_flight_messages() {
    let b = TestBroker::start().await;
    let mut watcher = V4::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("takeover/will", Q4::AtLeastOnce).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "mover");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let mut first_connect = connect.clone();
    first_connect.will = Some(mqtt_codec::LastWill {
        topic: "takeover/will".into(),
        payload: bytes::Bytes::from_static(b"replaced"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut first, _) = Raw::connect(b.tcp(), first_connect).await;
    first
        .subscribe("takeover/data", qos_opts(QoS::AtLeastOnce), None)
        .await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("takeover/data", Q4::AtLeastOnce, false, "m")
        .await
        .unwrap();
    let original = first.publish().await;

    let (mut second, connack) = Raw::connect(b.tcp(), connect).await;
    assert!(connack.session_present);
    first
        .expect_disconnect(ReasonCode::SESSION_TAKEN_OVER)
        .await;
    let again = second.publish().await;
    assert_eq!(
        (again.dup, again.packet_id),
        (true, original.packet_id),
        "{again:?}"
    );
    assert_eq!(&watcher.publish().await.payload[..], b"replaced");
}
