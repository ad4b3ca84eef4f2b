//! Retained messages: set, replace, delete (empty payload), delivery on subscribe with
//! RETAIN = 1 and the stored QoS capped by the subscription, RETAIN = 0 on live
//! forwarding to 3.1.1 subscribers, and MQTT 5 Retain Handling / Retain As Published.

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

/// MQTT 3.1.1 §3.3.1.3: the last retained message per topic is delivered to new
/// subscribers with RETAIN = 1; an empty retained payload deletes it and is still
/// forwarded to current subscribers; live forwarding clears RETAIN [MQTT-3.3.1-9].
#[tokio::test]
async fn retained_message_is_set_replaced_and_deleted() {
    let b = TestBroker::start().await;
    let mut live = V4::connect(b.tcp(), "live", |_| {}).await;
    live.subscribe("r/#", Q4::AtLeastOnce).await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("r/a", Q4::AtLeastOnce, true, "1")
        .await
        .unwrap();
    publisher
        .client
        .publish("r/a", Q4::AtLeastOnce, true, "2")
        .await
        .unwrap();
    publisher
        .client
        .publish("r/b/c", Q4::AtLeastOnce, true, "3")
        .await
        .unwrap();
    for expected in ["1", "2", "3"] {
        let p = live.publish().await;
        assert_eq!(&p.payload[..], expected.as_bytes());
        assert!(!p.retain, "live forwarding to 3.1.1 clears RETAIN: {p:?}");
    }

    let mut late = V4::connect(b.tcp(), "late", |_| {}).await;
    late.subscribe("r/a", Q4::AtLeastOnce).await;
    let p = late.publish().await;
    assert_eq!(
        (&p.payload[..], p.retain),
        (&b"2"[..], true),
        "replaced, flagged retained"
    );
    late.no_publish().await;

    let mut wild = V4::connect(b.tcp(), "wild", |_| {}).await;
    wild.subscribe("r/#", Q4::AtLeastOnce).await;
    let mut topics = vec![wild.publish().await.topic, wild.publish().await.topic];
    topics.sort();
    assert_eq!(topics, ["r/a", "r/b/c"]);

    publisher
        .client
        .publish("r/a", Q4::AtLeastOnce, true, "")
        .await
        .unwrap();
    let p = live.publish().await;
    assert!(
        p.payload.is_empty(),
        "the delete is forwarded to current subscribers: {p:?}"
    );
    let mut after = V4::connect(b.tcp(), "after", |_| {}).await;
    after.subscribe("r/a", Q4::AtLeastOnce).await;
    after.no_publish().await;
    assert_eq!(b.broker.retained.len(), 1);
}

/// A retained message is delivered at min(stored QoS, granted QoS).
#[tokio::test]
async fn retained_delivery_qos_is_capped_by_the_subscription() {
    let b = TestBroker::start().await;
    let publisher = V4::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("rq", Q4::AtLeastOnce, true, "x")
        .await
        .unwrap();
    publisher
        .client
        .publish("sync", Q4::AtLeastOnce, false, "")
        .await
        .unwrap();
    // The retained message is stored before the broker answers the next PUBLISH's PUBACK.
    let mut publisher = publisher;
    for _ in 0..2 {
        publisher
            .events
            .find("PUBACK", |p| {
                matches!(p, rumqttc::Packet::PubAck(_)).then_some(())
            })
            .await;
    }
    for (granted, delivered) in [
        (Q4::ExactlyOnce, Q4::AtLeastOnce),
        (Q4::AtLeastOnce, Q4::AtLeastOnce),
        (Q4::AtMostOnce, Q4::AtMostOnce),
    ] {
        let mut s = V4::connect(b.tcp(), "s", |_| {}).await;
        s.subscribe("rq", granted).await;
        let p = s.publish().await;
        assert_eq!((p.qos, p.retain), (delivered, true), "granted {granted:?}");
    }
}

fn filter(topic: &str, rule: r5::RetainForwardRule, rap: bool) -> r5::Filter {
    let mut f = r5::Filter::new(topic, Q5::AtLeastOnce);
    f.retain_forward_rule = rule;
    f.preserve_retain = rap;
    f
}

/// MQTT 5 §3.8.3.1 Retain Handling: 0 sends retained messages on every SUBSCRIBE, 1 only
/// when the subscription is new, 2 never.
#[tokio::test]
async fn v5_retain_handling() {
    let b = TestBroker::start().await;
    let mut publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("rh", Q5::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    publisher
        .events
        .find("PUBACK", |p| {
            matches!(p, r5::Packet::PubAck(_)).then_some(())
        })
        .await;

    let mut every = V5::connect(b.tcp(), "every", |_| {}).await;
    for round in 0..2 {
        every
            .subscribe_filter(
                filter("rh", r5::RetainForwardRule::OnEverySubscribe, false),
                None,
            )
            .await;
        let p = every.publish().await;
        assert!(
            p.retain && &p.payload[..] == b"kept",
            "round {round}: {p:?}"
        );
    }

    let mut new_only = V5::connect(b.tcp(), "new-only", |_| {}).await;
    new_only
        .subscribe_filter(
            filter("rh", r5::RetainForwardRule::OnNewSubscribe, false),
            None,
        )
        .await;
    assert!(new_only.publish().await.retain);
    new_only
        .subscribe_filter(
            filter("rh", r5::RetainForwardRule::OnNewSubscribe, false),
            None,
        )
        .await;
    new_only.no_publish().await;

    let mut never = V5::connect(b.tcp(), "never", |_| {}).await;
    never
        .subscribe_filter(filter("rh", r5::RetainForwardRule::Never, false), None)
        .await;
    never.no_publish().await;
}

/// MQTT 5 §3.3.1.3: live forwarding keeps RETAIN only with Retain As Published; retained
/// messages sent because of a new subscription always carry RETAIN = 1.
#[tokio::test]
async fn v5_retain_as_published() {
    let b = TestBroker::start().await;
    let mut rap = V5::connect(b.tcp(), "rap", |_| {}).await;
    rap.subscribe_filter(
        filter("rap/#", r5::RetainForwardRule::OnEverySubscribe, true),
        None,
    )
    .await;
    let mut plain = V5::connect(b.tcp(), "plain", |_| {}).await;
    plain
        .subscribe_filter(
            filter("rap/#", r5::RetainForwardRule::OnEverySubscribe, false),
            None,
        )
        .await;

    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("rap/x", Q5::AtLeastOnce, true, "r")
        .await
        .unwrap();
    publisher
        .client
        .publish("rap/y", Q5::AtLeastOnce, false, "n")
        .await
        .unwrap();
    let (r, n) = (rap.publish().await, rap.publish().await);
    assert!(
        r.retain && !n.retain,
        "RAP keeps the flag as published: {r:?} {n:?}"
    );
    let (r, n) = (plain.publish().await, plain.publish().await);
    assert!(
        !r.retain && !n.retain,
        "without RAP the flag is cleared: {r:?} {n:?}"
    );

    let mut late = V5::connect(b.tcp(), "late", |_| {}).await;
    late.subscribe_filter(
        filter("rap/#", r5::RetainForwardRule::OnEverySubscribe, false),
        None,
    )
    .await;
    assert!(
        late.publish().await.retain,
        "retained-on-subscribe is always RETAIN = 1"
    );
}
