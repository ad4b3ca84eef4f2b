//! MQTT 5 features: overlapping subscriptions, subscription identifiers, No Local, topic
//! aliases both ways, message expiry, receive maximum and maximum packet size both
//! ways, property pass-through, payload format validation and the CONNACK properties.

use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{
    ConnAck, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, ReasonCode,
    SubscriptionOptions,
};
use rumqttc::v5::mqttbytes::QoS as Q5;

use crate::harness::*;

fn publish_with(
    topic: &str,
    qos: QoS,
    id: Option<u16>,
    payload: &[u8],
    properties: PublishProperties,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: id,
        payload: Bytes::copy_from_slice(payload),
        properties,
    })
}

async fn v5_with(
    b: &TestBroker,
    id: &str,
    tweak: impl FnOnce(&mut mqtt_codec::Connect),
) -> (Raw, ConnAck) {
    let mut c = connect_packet(ProtocolVersion::V5, id);
    tweak(&mut c);
    let (raw, connack) = Raw::connect(b.tcp(), c).await;
    assert_eq!(connack.reason_code, ReasonCode::SUCCESS, "{connack:?}");
    (raw, connack)
}

/// MQTT 5 §3.3.4: a client with several matching subscriptions gets ONE delivery, at the
/// highest granted QoS, carrying every matching subscription identifier.
#[tokio::test]
async fn overlapping_subscriptions_deliver_once_with_max_qos_and_all_identifiers() {
    let b = TestBroker::start().await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V5, "overlap").await;
    c.subscribe("ov/+", qos_opts(QoS::AtMostOnce), Some(1))
        .await;
    c.subscribe("ov/#", qos_opts(QoS::ExactlyOnce), Some(2))
        .await;
    c.subscribe("ov/x", qos_opts(QoS::AtLeastOnce), None).await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("ov/x", Q5::ExactlyOnce, false, "x")
        .await
        .unwrap();
    let p = c.publish().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    let mut ids = p.properties.subscription_identifiers.clone();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    c.send(Packet::PubRec(PubResponse::new(p.packet_id.unwrap())))
        .await;
    assert!(matches!(c.recv().await, Some(Packet::PubRel(_))));
    c.nothing().await;
}

/// MQTT 5 §3.8.2.1.2: the identifier of the matching subscription travels with each
/// delivery; replacing the subscription without one removes it.
#[tokio::test]
async fn subscription_identifiers_are_delivered() {
    let b = TestBroker::start().await;
    let mut sub = V5::connect(b.tcp(), "ids", |_| {}).await;
    let props = r5::SubscribeProperties {
        id: Some(42),
        user_properties: vec![],
    };
    sub.subscribe_filter(r5::Filter::new("id/#", Q5::AtLeastOnce), Some(props))
        .await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("id/1", Q5::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let p = sub.publish().await;
    assert_eq!(
        p.properties.map(|p| p.subscription_identifiers),
        Some(vec![42])
    );

    sub.subscribe("id/#", Q5::AtLeastOnce).await;
    publisher
        .client
        .publish("id/2", Q5::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let p = sub.publish().await;
    let ids = p
        .properties
        .map(|p| p.subscription_identifiers)
        .unwrap_or_default();
    assert!(ids.is_empty(), "{ids:?}");
}

/// MQTT 5 §3.8.3.1: with No Local the client's own publications are not sent back.
#[tokio::test]
async fn no_local_skips_the_publishers_own_messages() {
    let b = TestBroker::start().await;
    let mut me = V5::connect(b.tcp(), "me", |_| {}).await;
    let mut f = r5::Filter::new("chat", Q5::AtLeastOnce);
    f.nolocal = true;
    me.subscribe_filter(f, None).await;
    me.client
        .publish("chat", Q5::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    me.no_publish().await;
    let other = V5::connect(b.tcp(), "other", |_| {}).await;
    other
        .client
        .publish("chat", Q5::AtLeastOnce, false, "theirs")
        .await
        .unwrap();
    assert_eq!(&me.publish().await.payload[..], b"theirs");
}

/// MQTT 5 §3.3.2.3.4: a client sets up a topic alias with topic + alias and then sends
/// the alias alone; it may remap an alias to another topic.
#[tokio::test]
async fn topic_alias_from_client_to_server() {
    let b = TestBroker::start().await;
    let mut sub = V5::connect(b.tcp(), "sub", |_| {}).await;
    sub.subscribe("alias/#", Q5::AtLeastOnce).await;
    let (mut c, connack) = v5_with(&b, "aliaser", |_| {}).await;
    assert_eq!(connack.properties.topic_alias_maximum, Some(64));
    let alias = |topic: &str, n| {
        publish_with(
            topic,
            QoS::AtMostOnce,
            None,
            b"x",
            PublishProperties {
                topic_alias: Some(n),
                ..Default::default()
            },
        )
    };
    c.send(alias("alias/a", 1)).await;
    c.send(alias("", 1)).await;
    c.send(alias("alias/b", 1)).await;
    c.send(alias("", 1)).await;
    c.send(alias("alias/c", 64)).await;
    c.send(alias("", 64)).await;
    for expected in [
        "alias/a", "alias/a", "alias/b", "alias/b", "alias/c", "alias/c",
    ] {
        assert_eq!(&sub.publish().await.topic[..], expected.as_bytes());
    }
    // Every one of the six PUBLISH packets carried an alias; none went out with one.
    let used = "robustmq_topic_alias_used_total";
    assert_eq!(b.metric(used, &[("direction", "in")]).await, 6.0);
    assert_eq!(b.metric(used, &[("direction", "out")]).await, 0.0);
}

/// MQTT 5 §3.3.2.3.4 / §3.1.2.11.5: the server may use topic aliases up to the client's
/// Topic Alias Maximum, and never when the client did not send one.
#[tokio::test]
async fn topic_alias_from_server_to_client() {
    let b = TestBroker::start().await;
    let (mut c, _) = v5_with(&b, "alias-taker", |c| {
        c.properties.topic_alias_maximum = Some(1)
    })
    .await;
    c.subscribe("down/#", qos_opts(QoS::AtMostOnce), None).await;
    let (mut plain, _) = v5_with(&b, "no-alias", |_| {}).await;
    plain
        .subscribe("down/#", qos_opts(QoS::AtMostOnce), None)
        .await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    for topic in ["down/a", "down/a", "down/b", "down/a"] {
        publisher
            .client
            .publish(topic, Q5::AtMostOnce, false, "x")
            .await
            .unwrap();
    }
    let first = c.publish().await;
    assert_eq!(
        (&*first.topic, first.properties.topic_alias),
        ("down/a", Some(1))
    );
    let second = c.publish().await;
    assert_eq!(
        (&*second.topic, second.properties.topic_alias),
        ("", Some(1)),
        "alias alone"
    );
    let third = c.publish().await;
    assert_eq!(&*third.topic, "down/b", "no alias left for a second topic");
    assert!(
        third.properties.topic_alias.is_none_or(|a| a == 1),
        "{third:?}"
    );
    let fourth = c.publish().await;
    let resolved = if fourth.topic.is_empty() {
        // An alias alone must refer to the topic it was last set to.
        assert_eq!(fourth.properties.topic_alias, Some(1));
        if third.properties.topic_alias == Some(1) {
            "down/b"
        } else {
            "down/a"
        }
    } else {
        &*fourth.topic
    };
    assert_eq!(resolved, "down/a");
    for _ in 0..4 {
        let p = plain.publish().await;
        assert!(
            !p.topic.is_empty() && p.properties.topic_alias.is_none(),
            "{p:?}"
        );
    }
}

/// MQTT 5 §3.3.2.3.3: an expired message is not delivered (here: it expires while the
/// subscriber is offline), and the forwarded Message Expiry Interval is the received one
/// minus the time the message waited in the server.
#[tokio::test]
async fn message_expiry_drops_stale_messages_and_forwards_the_remaining_time() {
    let b = TestBroker::start().await;
    let persistent = |c: &mut mqtt_codec::Connect| {
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(300);
    };
    let (mut c, _) = v5_with(&b, "late-reader", persistent).await;
    c.subscribe("exp/#", qos_opts(QoS::AtLeastOnce), None).await;
    drop(c);

    let (mut publisher, _) = v5_with(&b, "pub", |_| {}).await;
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    };
    publisher
        .send(publish_with(
            "exp/short",
            QoS::AtLeastOnce,
            Some(1),
            b"s",
            expiring(1),
        ))
        .await;
    publisher
        .send(publish_with(
            "exp/long",
            QoS::AtLeastOnce,
            Some(2),
            b"l",
            expiring(30),
        ))
        .await;
    let mut retained = publish_with("exp/retained", QoS::AtLeastOnce, Some(3), b"r", expiring(1));
    if let Packet::Publish(p) = &mut retained {
        p.retain = true;
    }
    publisher.send(retained).await;
    for _ in 0..3 {
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    }
    // Let the short ones expire while the subscriber is away.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut c, connack) = v5_with(&b, "late-reader", persistent).await;
    assert!(connack.session_present);
    let p = c.publish().await;
    assert_eq!(
        &*p.topic, "exp/long",
        "the expired message is not delivered"
    );
    let left = p
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!(
        (1..=28).contains(&left),
        "30 s minus the ~2 s it waited, got {left}"
    );
    c.send(Packet::PubAck(PubResponse::new(p.packet_id.unwrap())))
        .await;
    c.nothing().await;
    let dropped = b
        .metric("robustmq_messages_dropped_total", &[("reason", "expired")])
        .await;
    assert!(dropped >= 2.0, "both expired copies counted: {dropped}");
    // An expired retained message is not sent to new subscribers either.
    let (mut fresh, _) = v5_with(&b, "fresh", |_| {}).await;
    fresh
        .subscribe("exp/retained", qos_opts(QoS::AtLeastOnce), None)
        .await;
    fresh.nothing().await;
}

/// MQTT 5 §4.9: the server never has more unacknowledged QoS 1/2 deliveries in flight
/// than the client's Receive Maximum; each acknowledgement lets one more through.
#[tokio::test]
async fn client_receive_maximum_limits_deliveries_in_flight() {
    let b = TestBroker::start().await;
    let (mut c, _) = v5_with(&b, "slow", |c| c.properties.receive_maximum = Some(2)).await;
    c.subscribe("work", qos_opts(QoS::AtLeastOnce), None).await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..5 {
        publisher
            .client
            .publish("work", Q5::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let first = c.publish().await;
    let second = c.publish().await;
    c.nothing().await;
    c.send(Packet::PubAck(PubResponse::new(first.packet_id.unwrap())))
        .await;
    let third = c.publish().await;
    assert_eq!(&third.payload[..], b"2");
    c.nothing().await;
    c.send(Packet::PubAck(PubResponse::new(second.packet_id.unwrap())))
        .await;
    c.send(Packet::PubAck(PubResponse::new(third.packet_id.unwrap())))
        .await;
    let (p4, p5) = (c.publish().await, c.publish().await);
    assert_eq!((&p4.payload[..], &p5.payload[..]), (&b"3"[..], &b"4"[..]));
}

/// MQTT 5 §3.2.2.3.3 / §3.2.2.3.6 and friends: the CONNACK tells the client our limits.
#[tokio::test]
async fn connack_advertises_the_server_limits() {
    let b = TestBroker::with(|c| {
        c.limits.receive_maximum = 7;
        c.limits.max_packet_size = 4096;
        c.limits.maximum_qos = 1;
        c.limits.retain_available = false;
        c.limits.shared_subscription_available = false;
        c.limits.wildcard_subscription_available = false;
        c.limits.subscription_identifiers_available = false;
        c.limits.topic_alias_maximum = 5;
    })
    .await;
    let (_c, connack) = v5_with(&b, "curious", |_| {}).await;
    let p = connack.properties;
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.topic_alias_maximum, Some(5));
}

/// MQTT 5 §3.1.2.11.4: a message larger than the client's Maximum Packet Size is not
/// sent to it (and is counted); smaller ones still are.
#[tokio::test]
async fn messages_larger_than_the_client_maximum_packet_size_are_not_sent() {
    let b = TestBroker::start().await;
    let (mut c, _) = v5_with(&b, "small", |c| {
        c.properties.maximum_packet_size = Some(128)
    })
    .await;
    c.subscribe("size", qos_opts(QoS::AtLeastOnce), None).await;
    let mut big = V5::connect(b.tcp(), "big-sub", |_| {}).await;
    big.subscribe("size", Q5::AtLeastOnce).await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("size", Q5::AtLeastOnce, false, vec![b'x'; 300])
        .await
        .unwrap();
    publisher
        .client
        .publish("size", Q5::AtLeastOnce, false, "tiny")
        .await
        .unwrap();
    assert_eq!(big.publish().await.payload.len(), 300, "others get it");
    let p = c.publish().await;
    assert_eq!(&p.payload[..], b"tiny", "the oversize one is skipped");
    c.send(Packet::PubAck(PubResponse::new(p.packet_id.unwrap())))
        .await;
    assert!(
        b.metric(
            "robustmq_messages_dropped_total",
            &[("reason", "too_large")]
        )
        .await
            >= 1.0
    );
}

/// MQTT 5 §3.3.2.3: Payload Format Indicator, Content Type, Response Topic, Correlation
/// Data, User Properties and Message Expiry reach the subscriber unchanged (User
/// Properties in order, §3.3.2.3.7).
#[tokio::test]
async fn publish_properties_pass_through() {
    let b = TestBroker::start().await;
    let mut sub = V5::connect(b.tcp(), "sub", |_| {}).await;
    sub.subscribe("props", Q5::AtLeastOnce).await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    let sent = r5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: None,
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![
            ("k".into(), "v1".into()),
            ("a".into(), "b".into()),
            ("k".into(), "v2".into()),
        ],
        subscription_identifiers: vec![],
        content_type: Some("text/plain".into()),
    };
    publisher
        .client
        .publish_with_properties("props", Q5::AtLeastOnce, false, "héllo", sent.clone())
        .await
        .unwrap();
    let got = sub.publish().await.properties.expect("properties");
    assert_eq!(got.payload_format_indicator, Some(1));
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(got.correlation_data, sent.correlation_data);
    assert_eq!(got.user_properties, sent.user_properties);
    let left = got.message_expiry_interval.expect("expiry forwarded");
    assert!((3595..=3600).contains(&left), "{left}");
}

/// MQTT 5 §3.3.2.3.2: a payload announced as UTF-8 that is not may be refused with 0x99.
#[tokio::test]
async fn invalid_utf8_payload_with_format_indicator_is_refused() {
    let b = TestBroker::start().await;
    let mut sub = V5::connect(b.tcp(), "sub", |_| {}).await;
    sub.subscribe("pfi", Q5::AtLeastOnce).await;
    let (mut c, _) = v5_with(&b, "pfi", |_| {}).await;
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    c.send(publish_with(
        "pfi",
        QoS::AtLeastOnce,
        Some(3),
        b"\xff\xfe",
        props,
    ))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::PAYLOAD_FORMAT_INVALID),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    sub.no_publish().await;
}

/// Request Response Information = 1 is accepted (the server may or may not answer with
/// Response Information, §3.1.2.11.7), and a request/response exchange carries the
/// response topic and correlation data end to end.
#[tokio::test]
async fn request_response_pattern() {
    let b = TestBroker::start().await;
    let (mut responder, _) = v5_with(&b, "responder", |c| {
        c.properties.request_response_information = Some(true)
    })
    .await;
    responder
        .subscribe("svc/req", SubscriptionOptions::default(), None)
        .await;
    let (mut requester, _) = v5_with(&b, "requester", |_| {}).await;
    requester
        .subscribe("svc/resp/requester", SubscriptionOptions::default(), None)
        .await;
    let props = PublishProperties {
        response_topic: Some("svc/resp/requester".into()),
        correlation_data: Some(Bytes::from_static(b"req-1")),
        ..Default::default()
    };
    requester
        .send(publish_with(
            "svc/req",
            QoS::AtMostOnce,
            None,
            b"ping",
            props,
        ))
        .await;
    let req = responder.publish().await;
    let reply_to = req
        .properties
        .response_topic
        .clone()
        .expect("response topic");
    let props = PublishProperties {
        correlation_data: req.properties.correlation_data.clone(),
        ..Default::default()
    };
    responder
        .send(publish_with(
            &reply_to,
            QoS::AtMostOnce,
            None,
            b"pong",
            props,
        ))
        .await;
    let resp = requester.publish().await;
    assert_eq!(&resp.payload[..], b"pong");
    assert_eq!(
        resp.properties.correlation_data.as_deref(),
        Some(&b"req-1"[..])
    );
}

/// MQTT 5 §4.9 after a reconnect: deliveries left in flight are resent within the
/// Receive Maximum of the *new* connection, the rest as acknowledgements arrive.
#[tokio::test]
async fn resent_deliveries_respect_the_new_receive_maximum() {
    let b = TestBroker::start().await;
    let connect = |rm| {
        move |c: &mut mqtt_codec::Connect| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(300);
            c.properties.receive_maximum = Some(rm);
        }
    };
    let (mut c, _) = v5_with(&b, "shrinking", connect(10)).await;
    c.subscribe("rm", qos_opts(QoS::AtLeastOnce), None).await;
    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..3 {
        publisher
            .client
            .publish("rm", Q5::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        c.publish().await;
    }
    drop(c); // all three unacknowledged

    let (mut c, _) = v5_with(&b, "shrinking", connect(1)).await;
    let first = c.publish().await;
    assert!(first.dup && &first.payload[..] == b"0", "{first:?}");
    c.nothing().await;
    let mut current = first;
    for expected in [&b"1"[..], b"2"] {
        c.send(Packet::PubAck(PubResponse::new(current.packet_id.unwrap())))
            .await;
        current = c.publish().await;
        assert!(
            current.dup && &current.payload[..] == expected,
            "{current:?}"
        );
    }
    c.send(Packet::PubAck(PubResponse::new(current.packet_id.unwrap())))
        .await;
    c.nothing().await;
}

/// MQTT 5 §3.2.2.3.15: Response Information is returned only to a client that sets
/// Request Response Information, and only when the broker is configured to offer it.
#[tokio::test]
async fn response_information_is_offered_when_requested_and_configured() {
    let b = TestBroker::with(|c| c.limits.response_information = Some("responses/".into())).await;
    let (_asks, connack) = v5_with(&b, "asks", |c| {
        c.properties.request_response_information = Some(true)
    })
    .await;
    assert_eq!(
        connack.properties.response_information.as_deref(),
        Some("responses/")
    );
    let (_silent, connack) = v5_with(&b, "silent", |_| {}).await;
    assert_eq!(connack.properties.response_information, None);

    let unconfigured = TestBroker::start().await;
    let (_asks, connack) = v5_with(&unconfigured, "asks", |c| {
        c.properties.request_response_information = Some(true)
    })
    .await;
    assert_eq!(connack.properties.response_information, None);
}
