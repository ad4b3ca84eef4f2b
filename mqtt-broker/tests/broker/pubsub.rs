//! Publish/subscribe basics for MQTT 3.1, 3.1.1 and 5.0: round trips at every QoS,
//! UNSUBSCRIBE, PINGREQ, topic matching (`+`, `#`, `$`-topics) and filter validation.

use mqtt_codec::{
    Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, Subscribe, SubscribeFilter, Unsubscribe,
};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

/// A subscriber that reads nothing for a while gets every message afterwards, QoS 0 and
/// QoS 1 in the order they were published: several megabytes back up in its queue, so
/// the broker writes them in runs that stop at its write buffer's high-water mark and
/// puts the rest back.
#[tokio::test]
async fn a_backed_up_subscriber_gets_mixed_qos_in_publish_order() {
    const MESSAGES: u16 = 3000;
    let b = TestBroker::with(|c| c.limits.max_queued_messages = 100_000).await;
    let mut sub = Raw::connected(b.tcp(), ProtocolVersion::V5, "slow-sub").await;
    sub.subscribe("order/#", qos_opts(QoS::AtLeastOnce), None)
        .await;
    let mut publisher = Raw::connected(b.tcp(), ProtocolVersion::V5, "fast-pub").await;
    for i in 0..MESSAGES {
        let qos1 = i % 10 == 0;
        let mut payload = vec![0u8; 4096];
        payload[..2].copy_from_slice(&i.to_be_bytes());
        publisher
            .send(Packet::Publish(mqtt_codec::Publish {
                dup: false,
                qos: if qos1 {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                },
                retain: false,
                topic: "order/x".into(),
                packet_id: qos1.then_some(i / 10 + 1),
                payload: payload.into(),
                properties: Default::default(),
            }))
            .await;
    }
    for expected in 0..MESSAGES {
        let p = sub.publish().await;
        let got = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        assert_eq!(got, expected, "publish order");
        assert_eq!(
            p.qos == QoS::AtLeastOnce,
            expected % 10 == 0,
            "QoS of {got}"
        );
        if let Some(id) = p.packet_id {
            sub.send(Packet::PubAck(PubResponse::new(id))).await;
        }
    }
    sub.nothing().await;
}

/// Messages that arrive in one write reach every subscriber, in order, wherever they
/// sit in the batch: the broker holds the subscribers' wake-ups while it routes what it
/// read, and sends them every 256 messages, before a publish that waits (a retained
/// one) and when no more input is waiting.
#[tokio::test]
async fn every_message_of_one_read_reaches_every_subscriber() {
    const MESSAGES: u16 = 400;
    const RETAINED: u16 = 100;
    let b = TestBroker::start().await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut sub = Raw::connected(b.tcp(), ProtocolVersion::V5, &format!("batch-sub-{i}")).await;
        sub.subscribe("batch/#", qos_opts(QoS::AtMostOnce), None)
            .await;
        subs.push(sub);
    }
    let mut publisher = Raw::connected(b.tcp(), ProtocolVersion::V5, "batch-pub").await;
    let batch = |numbers: std::ops::Range<u16>| {
        let mut bytes = bytes::BytesMut::new();
        for i in numbers {
            let packet = Packet::Publish(mqtt_codec::Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: i == RETAINED,
                topic: "batch/x".into(),
                packet_id: None,
                payload: i.to_be_bytes().to_vec().into(),
                properties: Default::default(),
            });
            mqtt_codec::encode(&packet, ProtocolVersion::V5, &mut bytes).unwrap();
        }
        bytes
    };
    // Then three more in one write, into queues that are empty by then: only the wake-up
    // at the end of the read sends them.
    for numbers in [0..MESSAGES, MESSAGES..MESSAGES + 3] {
        publisher.send_bytes(&batch(numbers.clone())).await;
        for sub in &mut subs {
            for expected in numbers.clone() {
                let p = sub.publish().await;
                assert_eq!(p.payload[..], expected.to_be_bytes(), "publish order");
            }
        }
    }
    for sub in &mut subs {
        sub.nothing().await;
    }
}

#[tokio::test]
async fn v311_round_trip_at_every_qos_then_unsubscribe() {
    let b = TestBroker::start().await;
    let mut sub = V4::connect(b.tcp(), "v4-sub", |_| {}).await;
    assert_eq!(
        sub.subscribe("a/+", Q4::ExactlyOnce).await,
        vec![rumqttc::SubscribeReasonCode::Success(Q4::ExactlyOnce)]
    );
    let mut publisher = V4::connect(b.tcp(), "v4-pub", |_| {}).await;
    for qos in [Q4::AtMostOnce, Q4::AtLeastOnce, Q4::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher
            .client
            .publish("a/b", qos, false, payload.clone())
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(
            (p.topic.as_str(), &p.payload[..], p.qos),
            ("a/b", payload.as_bytes(), qos)
        );
        assert!(!p.retain && !p.dup, "{p:?}");
    }
    // The publisher's flows completed: PUBACK for QoS 1, PUBREC → PUBREL → PUBCOMP for QoS 2.
    publisher
        .events
        .find("PUBACK", |p| {
            matches!(p, rumqttc::Packet::PubAck(_)).then_some(())
        })
        .await;
    publisher
        .events
        .find("PUBCOMP", |p| {
            matches!(p, rumqttc::Packet::PubComp(_)).then_some(())
        })
        .await;

    sub.client.unsubscribe("a/+").await.unwrap();
    sub.events
        .find("UNSUBACK", |p| {
            matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(())
        })
        .await;
    publisher
        .client
        .publish("a/b", Q4::AtLeastOnce, false, "after")
        .await
        .unwrap();
    sub.no_publish().await;
}

#[tokio::test]
async fn v5_round_trip_at_every_qos_then_unsubscribe() {
    let b = TestBroker::start().await;
    let mut sub = V5::connect(b.tcp(), "v5-sub", |_| {}).await;
    assert_eq!(sub.connack.code, r5::ConnectReturnCode::Success);
    assert_eq!(
        sub.subscribe("a/#", Q5::ExactlyOnce).await,
        vec![r5::SubscribeReasonCode::Success(Q5::ExactlyOnce)]
    );
    let mut publisher = V5::connect(b.tcp(), "v5-pub", |_| {}).await;
    for qos in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher
            .client
            .publish("a/b/c", qos, false, payload.clone())
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(
            (&p.topic[..], &p.payload[..], p.qos),
            (&b"a/b/c"[..], payload.as_bytes(), qos)
        );
    }
    let puback = publisher
        .events
        .find("PUBACK", |p| match p {
            r5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(puback, r5::PubAckReason::Success);
    publisher
        .events
        .find("PUBCOMP", |p| {
            matches!(p, r5::Packet::PubComp(_)).then_some(())
        })
        .await;

    sub.client.unsubscribe("a/#").await.unwrap();
    let codes = sub
        .events
        .find("UNSUBACK", |p| match p {
            r5::Packet::UnsubAck(u) => Some(u.reasons.clone()),
            _ => None,
        })
        .await;
    assert_eq!(codes, vec![r5::UnsubAckReason::Success]);
    sub.client.unsubscribe("never/subscribed").await.unwrap();
    let codes = sub
        .events
        .find("UNSUBACK", |p| match p {
            r5::Packet::UnsubAck(u) => Some(u.reasons.clone()),
            _ => None,
        })
        .await;
    assert_eq!(codes, vec![r5::UnsubAckReason::NoSubscriptionExisted]);
    publisher
        .client
        .publish("a/b/c", Q5::AtLeastOnce, false, "after")
        .await
        .unwrap();
    sub.no_publish().await;
}

/// MQTT 3.1 ("MQIsdp", level 3) is still spoken: no client library here does, so raw.
#[tokio::test]
async fn v31_client_connects_subscribes_and_publishes() {
    let b = TestBroker::start().await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V3_1, "mqisdp-client").await;
    c.subscribe("legacy/#", qos_opts(QoS::AtLeastOnce), None)
        .await;
    c.send(publish_packet(
        "legacy/x",
        QoS::AtLeastOnce,
        Some(9),
        b"old",
    ))
    .await;
    let mut got_puback = false;
    let mut got_publish = false;
    for _ in 0..2 {
        match c.recv().await {
            Some(Packet::PubAck(a)) => {
                assert_eq!(a.packet_id, 9);
                got_puback = true;
            }
            Some(Packet::Publish(p)) => {
                assert_eq!(
                    (&*p.topic, &p.payload[..], p.qos),
                    ("legacy/x", &b"old"[..], QoS::AtLeastOnce)
                );
                c.send(Packet::PubAck(PubResponse::new(p.packet_id.unwrap())))
                    .await;
                got_publish = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_puback && got_publish);
}

#[tokio::test]
async fn pingreq_is_answered_with_pingresp() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut c = Raw::connected(b.tcp(), version, "pinger").await;
        c.send(Packet::PingReq).await;
        assert_eq!(c.recv().await, Some(Packet::PingResp), "{version:?}");
    }
}

/// `+` and `#` match one and any number of levels; filters starting with a wildcard do
/// not match topics starting with `$` (MQTT 3.1.1 §4.7.2, MQTT 5 §4.7.2).
#[tokio::test]
async fn wildcards_match_levels_but_not_dollar_topics() {
    let b = TestBroker::start().await;
    let mut all = V4::connect(b.tcp(), "all", |_| {}).await;
    all.subscribe("#", Q4::AtLeastOnce).await;
    let mut plus = V4::connect(b.tcp(), "plus", |_| {}).await;
    plus.subscribe("+/status", Q4::AtLeastOnce).await;
    let mut dollar = V4::connect(b.tcp(), "dollar", |_| {}).await;
    dollar.subscribe("$dev/+", Q4::AtLeastOnce).await;
    let mut parent = V4::connect(b.tcp(), "parent", |_| {}).await;
    parent.subscribe("home/#", Q4::AtLeastOnce).await;

    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("$dev/status", Q4::AtLeastOnce, false, "d")
        .await
        .unwrap();
    assert_eq!(dollar.publish().await.topic, "$dev/status");
    all.no_publish().await;
    plus.no_publish().await;

    publisher
        .client
        .publish("x/status", Q4::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(all.publish().await.topic, "x/status");
    assert_eq!(plus.publish().await.topic, "x/status");
    // `#` also matches the parent level itself (§4.7.1.2).
    publisher
        .client
        .publish("home", Q4::AtLeastOnce, false, "h")
        .await
        .unwrap();
    assert_eq!(parent.publish().await.topic, "home");
    assert_eq!(all.publish().await.topic, "home");
    publisher
        .client
        .publish("home/a/b", Q4::AtLeastOnce, false, "h")
        .await
        .unwrap();
    assert_eq!(parent.publish().await.topic, "home/a/b");
    plus.no_publish().await;
    dollar.no_publish().await;
}

/// Invalid topic filters are refused in the SUBACK (3.1.1: 0x80; 5.0: 0x8F) while the
/// valid ones in the same SUBSCRIBE are granted.
#[tokio::test]
async fn invalid_topic_filters_are_refused_per_filter() {
    let b = TestBroker::start().await;
    let filters = ["ok/+", "a/#/b", "a+", "#/x", "+/+/#", "a/b#"];
    for (version, refused) in [(ProtocolVersion::V3_1_1, 0x80), (ProtocolVersion::V5, 0x8F)] {
        let mut c = Raw::connected(b.tcp(), version, "filters").await;
        c.send(Packet::Subscribe(Subscribe {
            packet_id: 3,
            filters: filters
                .iter()
                .map(|f| SubscribeFilter {
                    filter: (*f).into(),
                    options: qos_opts(QoS::AtLeastOnce),
                })
                .collect(),
            properties: Default::default(),
        }))
        .await;
        match c.recv().await {
            Some(Packet::SubAck(s)) => {
                let got: Vec<u8> = s.reason_codes.iter().map(|r| r.0).collect();
                assert_eq!(
                    got,
                    vec![1, refused, refused, refused, 1, refused],
                    "{version:?}"
                );
                assert_eq!(s.packet_id, 3);
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
        c.send(Packet::Unsubscribe(Unsubscribe {
            packet_id: 4,
            filters: vec!["ok/+".into(), "a/#/b".into(), "never/subscribed".into()],
            user_properties: vec![],
        }))
        .await;
        match c.recv().await {
            Some(Packet::UnsubAck(u)) => {
                assert_eq!(u.packet_id, 4);
                if version.is_v5() {
                    assert_eq!(
                        u.reason_codes,
                        vec![
                            ReasonCode::SUCCESS,
                            ReasonCode::TOPIC_FILTER_INVALID,
                            ReasonCode::NO_SUBSCRIPTION_EXISTED
                        ]
                    );
                }
            }
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }
    b.assert_healthy().await;
}

/// A client may not publish into `$SYS`; MQTT 5 says so in the PUBACK (0x87).
#[tokio::test]
async fn clients_cannot_publish_to_sys_topics() {
    let b = TestBroker::start().await;
    let mut watcher = V5::connect(b.tcp(), "sys-watch", |_| {}).await;
    watcher.subscribe("$SYS/#", Q5::AtMostOnce).await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V5, "sys-writer").await;
    c.send(publish_packet(
        "$SYS/broker/uptime",
        QoS::AtLeastOnce,
        Some(5),
        b"forged",
    ))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    watcher.no_publish().await;
}
