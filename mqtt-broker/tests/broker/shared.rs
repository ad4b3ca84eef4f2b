//! Shared subscriptions `$share/{group}/{filter}` (MQTT 5 §4.8.2): each message goes to
//! one member per group, round robin; groups and ordinary subscribers each get a copy;
//! retained messages are not sent on a shared subscribe.

use std::collections::HashSet;

use mqtt_codec::{Packet, ProtocolVersion, QoS};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

#[tokio::test]
async fn shared_group_round_robins_and_every_group_gets_a_copy() {
    let b = TestBroker::start().await;
    let mut a = V5::connect(b.tcp(), "member-a", |_| {}).await;
    a.subscribe("$share/workers/jobs/+", Q5::AtLeastOnce).await;
    // Shared subscriptions also work for 3.1.1 clients (as in mosquitto and EMQX).
    let mut m4 = V4::connect(b.tcp(), "member-b", |_| {}).await;
    m4.subscribe("$share/workers/jobs/+", Q4::AtLeastOnce).await;
    let mut other_group = V5::connect(b.tcp(), "auditor", |_| {}).await;
    other_group
        .subscribe("$share/audit/jobs/#", Q5::AtLeastOnce)
        .await;
    let mut plain = V5::connect(b.tcp(), "plain", |_| {}).await;
    plain.subscribe("jobs/+", Q5::AtLeastOnce).await;

    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..10 {
        publisher
            .client
            .publish(format!("jobs/{i}"), Q5::AtLeastOnce, false, "w")
            .await
            .unwrap();
    }
    for i in 0..10 {
        assert_eq!(
            other_group.publish().await.topic,
            format!("jobs/{i}").as_bytes(),
            "group of one"
        );
        assert_eq!(
            plain.publish().await.topic,
            format!("jobs/{i}").as_bytes(),
            "ordinary subscriber"
        );
    }
    let mut seen = HashSet::new();
    for _ in 0..5 {
        assert!(seen.insert(String::from_utf8(a.publish().await.topic.to_vec()).unwrap()));
        assert!(seen.insert(m4.publish().await.topic));
    }
    assert_eq!(
        seen.len(),
        10,
        "each message to exactly one member: {seen:?}"
    );
    a.no_publish().await;
    m4.no_publish().await;

    // A member that leaves gets nothing more; the rest of the group gets everything.
    a.client.unsubscribe("$share/workers/jobs/+").await.unwrap();
    a.events
        .find("UNSUBACK", |p| {
            matches!(p, r5::Packet::UnsubAck(_)).then_some(())
        })
        .await;
    for i in 0..4 {
        publisher
            .client
            .publish(format!("jobs/{i}"), Q5::AtLeastOnce, false, "w")
            .await
            .unwrap();
    }
    for _ in 0..4 {
        m4.publish().await;
    }
    a.no_publish().await;
}

/// MQTT 5 §3.8.4 / §4.8.2: retained messages are not sent for a new shared subscription.
#[tokio::test]
async fn shared_subscribe_gets_no_retained_messages() {
    let b = TestBroker::start().await;
    let mut publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    publisher
        .client
        .publish("kept/x", Q5::AtLeastOnce, true, "r")
        .await
        .unwrap();
    publisher
        .events
        .find("PUBACK", |p| {
            matches!(p, r5::Packet::PubAck(_)).then_some(())
        })
        .await;
    let mut shared = V5::connect(b.tcp(), "shared", |_| {}).await;
    shared.subscribe("$share/g/kept/#", Q5::AtLeastOnce).await;
    shared.no_publish().await;
    let mut plain = V5::connect(b.tcp(), "plain", |_| {}).await;
    plain.subscribe("kept/#", Q5::AtLeastOnce).await;
    assert!(plain.publish().await.retain);
}

/// A share name must be non-empty without `/`, `+` or `#`, followed by a filter
/// (MQTT 5 §4.8.2); bad ones are refused in the SUBACK and UNSUBSCRIBE of a shared
/// filter removes just that membership.
#[tokio::test]
async fn malformed_share_names_are_refused() {
    let b = TestBroker::start().await;
    let mut c = Raw::connected(b.tcp(), ProtocolVersion::V5, "sharer").await;
    for bad in [
        "$share/g",
        "$share//x",
        "$share/g+/x",
        "$share/g#/x",
        "$share/g/",
    ] {
        c.send(subscribe_packet(2, bad, qos_opts(QoS::AtMostOnce), None))
            .await;
        match c.recv().await {
            Some(Packet::SubAck(s)) => {
                assert!(
                    s.reason_codes.len() == 1 && !s.reason_codes[0].is_success(),
                    "{bad}: {s:?}"
                )
            }
            other => panic!("{bad}: expected SUBACK, got {other:?}"),
        }
    }
    b.assert_healthy().await;
}

/// An offline member of a group (a persistent session without connection) does not
/// skew the rotation: the online members share the messages evenly.
#[tokio::test]
async fn offline_member_does_not_skew_the_rotation() {
    let b = TestBroker::start().await;
    let persistent = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(300));
    };
    let mut a = V5::connect(b.tcp(), "rr-a", |_| {}).await;
    a.subscribe("$share/rr/work", Q5::AtLeastOnce).await;
    let mut gone = V5::connect(b.tcp(), "rr-gone", persistent).await;
    gone.subscribe("$share/rr/work", Q5::AtLeastOnce).await;
    gone.disconnect().await;
    let mut c = V5::connect(b.tcp(), "rr-c", |_| {}).await;
    c.subscribe("$share/rr/work", Q5::AtLeastOnce).await;

    let publisher = V5::connect(b.tcp(), "pub", |_| {}).await;
    for i in 0..12 {
        publisher
            .client
            .publish("work", Q5::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    for _ in 0..6 {
        a.publish().await;
        c.publish().await;
    }
    a.no_publish().await;
    c.no_publish().await;
}
