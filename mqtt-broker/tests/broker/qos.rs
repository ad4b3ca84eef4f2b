//! QoS 0/1/2 in both directions: PUBACK, PUBREC/PUBREL/PUBCOMP, exactly-once delivery
//! when a publisher retransmits with DUP, packet-id reuse, QoS downgrade to the
//! subscription's maximum.

use bytes::Bytes;
use mqtt_codec::{Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode};
use rumqttc::QoS as Q4;

use crate::harness::*;

fn qos2(id: u16, dup: bool, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "once".into(),
        packet_id: Some(id),
        payload: Bytes::from_static(payload),
        properties: Default::default(),
    })
}

async fn expect_ack(c: &mut Raw, kind: &str, id: u16) -> PubResponse {
    let r = match (kind, c.recv().await) {
        ("PUBACK", Some(Packet::PubAck(r)))
        | ("PUBREC", Some(Packet::PubRec(r)))
        | ("PUBREL", Some(Packet::PubRel(r)))
        | ("PUBCOMP", Some(Packet::PubComp(r))) => r,
        (_, other) => panic!("expected {kind}, got {other:?}"),
    };
    assert_eq!(r.packet_id, id, "{kind}");
    r
}

/// MQTT 4.3.3: until it has received PUBREL the receiver treats a PUBLISH with the same
/// packet id as a duplicate (no second delivery); after PUBCOMP the id may be reused for
/// a new message.
#[tokio::test]
async fn qos2_is_delivered_once_despite_dup_retransmission_and_ids_are_reusable() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut sub = V4::connect(b.tcp(), "q2-sub", |_| {}).await;
        sub.subscribe("once", Q4::ExactlyOnce).await;
        let mut c = Raw::connected(b.tcp(), version, "q2-pub").await;

        c.send(qos2(7, false, b"one")).await;
        assert!(expect_ack(&mut c, "PUBREC", 7)
            .await
            .reason_code
            .is_success());
        c.send(qos2(7, true, b"one")).await;
        assert!(expect_ack(&mut c, "PUBREC", 7)
            .await
            .reason_code
            .is_success());
        let p = sub.publish().await;
        assert_eq!((&p.payload[..], p.qos), (&b"one"[..], Q4::ExactlyOnce));
        sub.no_publish().await;

        c.send(Packet::PubRel(PubResponse::new(7))).await;
        assert_eq!(
            expect_ack(&mut c, "PUBCOMP", 7).await.reason_code,
            ReasonCode::SUCCESS
        );

        c.send(qos2(7, false, b"two")).await;
        expect_ack(&mut c, "PUBREC", 7).await;
        assert_eq!(
            &sub.publish().await.payload[..],
            b"two",
            "{version:?}: id 7 reused"
        );
        c.send(Packet::PubRel(PubResponse::new(7))).await;
        expect_ack(&mut c, "PUBCOMP", 7).await;
        sub.no_publish().await;
    }
}

/// The broker's side of QoS 1 and 2 towards a subscriber: PUBLISH with a non-zero
/// packet id, PUBACK ends QoS 1; PUBREC is answered with PUBREL, PUBCOMP ends QoS 2.
#[tokio::test]
async fn broker_runs_qos1_and_qos2_flows_towards_subscribers() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut c = Raw::connected(b.tcp(), version, "raw-sub").await;
        c.subscribe("flow/#", qos_opts(QoS::ExactlyOnce), None)
            .await;
        let publisher = V4::connect(b.tcp(), "flow-pub", |_| {}).await;

        publisher
            .client
            .publish("flow/1", Q4::AtLeastOnce, false, "q1")
            .await
            .unwrap();
        let p = c.publish().await;
        assert_eq!(
            (p.qos, &p.payload[..], p.dup),
            (QoS::AtLeastOnce, &b"q1"[..], false)
        );
        let id1 = p.packet_id.expect("QoS 1 has a packet id");
        assert_ne!(id1, 0);
        c.send(Packet::PubAck(PubResponse::new(id1))).await;

        publisher
            .client
            .publish("flow/2", Q4::ExactlyOnce, false, "q2")
            .await
            .unwrap();
        let p = c.publish().await;
        assert_eq!((p.qos, &p.payload[..]), (QoS::ExactlyOnce, &b"q2"[..]));
        let id2 = p.packet_id.expect("QoS 2 has a packet id");
        assert_ne!(id2, 0);
        c.send(Packet::PubRec(PubResponse::new(id2))).await;
        assert_eq!(
            expect_ack(&mut c, "PUBREL", id2).await.reason_code,
            ReasonCode::SUCCESS
        );
        c.send(Packet::PubComp(PubResponse::new(id2))).await;

        publisher
            .client
            .publish("flow/0", Q4::AtMostOnce, false, "q0")
            .await
            .unwrap();
        let p = c.publish().await;
        assert_eq!(
            (p.qos, p.packet_id, &p.payload[..]),
            (QoS::AtMostOnce, None, &b"q0"[..])
        );
        c.nothing().await;
    }
}

/// Delivered QoS is min(published QoS, granted QoS) (MQTT 3.1.1 §3.8.4, MQTT 5 §3.8.4).
#[tokio::test]
async fn delivery_qos_is_downgraded_to_the_subscription() {
    let b = TestBroker::start().await;
    let mut q0 = V4::connect(b.tcp(), "sub-q0", |_| {}).await;
    q0.subscribe("down", Q4::AtMostOnce).await;
    let mut q1 = V4::connect(b.tcp(), "sub-q1", |_| {}).await;
    q1.subscribe("down", Q4::AtLeastOnce).await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("down", Q4::ExactlyOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(q0.publish().await.qos, Q4::AtMostOnce);
    assert_eq!(q1.publish().await.qos, Q4::AtLeastOnce);
}

/// PUBREL for an id the broker does not know still gets PUBCOMP (3.1.1) — in MQTT 5
/// with reason 0x92 Packet Identifier not found — and the connection stays up.
#[tokio::test]
async fn pubrel_for_an_unknown_packet_id_is_answered() {
    let b = TestBroker::start().await;
    for (version, reason) in [
        (ProtocolVersion::V3_1_1, ReasonCode::SUCCESS),
        (ProtocolVersion::V5, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
    ] {
        let mut c = Raw::connected(b.tcp(), version, "pubrel").await;
        c.send(Packet::PubRel(PubResponse::new(4242))).await;
        assert_eq!(
            expect_ack(&mut c, "PUBCOMP", 4242).await.reason_code,
            reason
        );
        c.send(Packet::PingReq).await;
        assert_eq!(c.recv().await, Some(Packet::PingResp));
    }
}

/// MQTT 5 PUBACK reason 0x10: accepted, but nobody subscribes.
#[tokio::test]
async fn v5_puback_says_no_matching_subscribers() {
    let b = TestBroker::start().await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V5, "lonely").await;
    c.send(publish_packet(
        "nobody/listens",
        QoS::AtLeastOnce,
        Some(1),
        b"x",
    ))
    .await;
    assert_eq!(
        expect_ack(&mut c, "PUBACK", 1).await.reason_code,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
}

/// MQTT 4.3.3 across a reconnect: the QoS 2 state of a resumed session remembers the
/// packet id, so the retransmitted PUBLISH (DUP = 1) is acknowledged, not delivered again.
#[tokio::test]
async fn qos2_retransmitted_after_reconnect_is_not_delivered_twice() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut sub = V4::connect(b.tcp(), "q2r-sub", |_| {}).await;
        sub.subscribe("once", Q4::ExactlyOnce).await;
        let mut connect = connect_packet(version, "q2r-pub");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = version.is_v5().then_some(60);
        let (mut c, _) = Raw::connect(b.tcp(), connect.clone()).await;
        c.send(qos2(21, false, b"one")).await;
        expect_ack(&mut c, "PUBREC", 21).await;
        assert_eq!(&sub.publish().await.payload[..], b"one");
        drop(c);

        let (mut c, connack) = Raw::connect(b.tcp(), connect).await;
        assert!(connack.session_present);
        c.send(qos2(21, true, b"one")).await;
        expect_ack(&mut c, "PUBREC", 21).await;
        c.send(Packet::PubRel(PubResponse::new(21))).await;
        assert_eq!(
            expect_ack(&mut c, "PUBCOMP", 21).await.reason_code,
            ReasonCode::SUCCESS
        );
        sub.no_publish().await;
    }
}

/// MQTT 2.2.1: packet ids of QoS 1/2 deliveries in flight at the same time are distinct
/// and non-zero; an id is reused only after its acknowledgement.
#[tokio::test]
async fn packet_ids_in_flight_are_distinct() {
    let b = TestBroker::start().await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V5, "many").await;
    c.subscribe("ids", qos_opts(QoS::ExactlyOnce), None).await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..30 {
        let qos = if i % 2 == 0 {
            Q4::AtLeastOnce
        } else {
            Q4::ExactlyOnce
        };
        publisher
            .client
            .publish("ids", qos, false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut ids = std::collections::HashSet::new();
    for i in 0..30 {
        let p = c.publish().await;
        assert_eq!(p.payload, format!("{i}").as_bytes(), "in order");
        let id = p.packet_id.unwrap();
        assert!(id != 0 && ids.insert(id), "id {id} reused while in flight");
    }
}
