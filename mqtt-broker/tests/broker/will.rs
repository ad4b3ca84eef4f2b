//! Will messages: published when the connection ends without DISCONNECT, not after a
//! normal DISCONNECT, published after MQTT 5 DISCONNECT 0x04, and the MQTT 5 Will Delay
//! Interval (cancelled by a reconnect to the session, cut short by the session's end).

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{Disconnect, LastWill, Packet, ProtocolVersion, QoS, ReasonCode, WillProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

fn will_connect(
    version: ProtocolVersion,
    id: &str,
    delay: Option<u32>,
    expiry: Option<u32>,
) -> mqtt_codec::Connect {
    let mut c = connect_packet(version, id);
    c.will = Some(LastWill {
        topic: "wills/raw".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..Default::default()
        },
    });
    c.properties.session_expiry_interval = expiry;
    c
}

/// MQTT 3.1.1 §3.1.2.5: the will is published when the network connection closes
/// without DISCONNECT; with its QoS and RETAIN.
#[tokio::test]
async fn will_is_published_when_the_connection_drops() {
    let b = TestBroker::start().await;
    let mut watcher = V4::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q4::AtLeastOnce).await;
    let dying = V4::connect(b.tcp(), "dying", |o| {
        o.set_last_will(rumqttc::LastWill::new(
            "wills/dying",
            "offline",
            Q4::AtLeastOnce,
            true,
        ));
    })
    .await;
    let before = b
        .metric("robustmq_will_messages_published_total", &[])
        .await;
    dying.events.kill();
    let p = watcher.publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos),
        ("wills/dying", &b"offline"[..], Q4::AtLeastOnce)
    );
    assert_eq!(
        b.metric("robustmq_will_messages_published_total", &[])
            .await,
        before + 1.0
    );
    // Published with RETAIN: a later subscriber gets it.
    let mut late = V4::connect(b.tcp(), "late", |_| {}).await;
    late.subscribe("wills/dying", Q4::AtLeastOnce).await;
    let p = late.publish().await;
    assert!(p.retain && &p.payload[..] == b"offline", "{p:?}");
}

/// MQTT 3.1.1 [MQTT-3.1.2-10] / MQTT 5 §3.14.4: DISCONNECT (normal) discards the will.
#[tokio::test]
async fn no_will_after_a_normal_disconnect() {
    let b = TestBroker::start().await;
    let mut watcher = V4::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q4::AtLeastOnce).await;
    let v4 = V4::connect(b.tcp(), "clean-v4", |o| {
        o.set_last_will(rumqttc::LastWill::new(
            "wills/v4",
            "x",
            Q4::AtLeastOnce,
            false,
        ));
    })
    .await;
    v4.disconnect().await;
    let v5 = V5::connect(b.tcp(), "clean-v5", |o| {
        o.set_last_will(r5::LastWill::new(
            "wills/v5",
            "x",
            Q5::AtLeastOnce,
            false,
            None,
        ));
    })
    .await;
    v5.disconnect().await;
    watcher.no_publish().await;
}

/// MQTT 5 §3.14.2.1: DISCONNECT with reason 0x04 asks the server to publish the will.
#[tokio::test]
async fn v5_disconnect_with_will_message_publishes_the_will() {
    let b = TestBroker::start().await;
    let mut watcher = V5::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q5::AtLeastOnce).await;
    let (mut c, _) = Raw::connect(
        b.tcp(),
        will_connect(ProtocolVersion::V5, "leaver", None, None),
    )
    .await;
    c.send(Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        properties: Default::default(),
    }))
    .await;
    assert!(
        c.closed().await.is_empty(),
        "the server closes without answering"
    );
    let p = watcher.publish().await;
    assert_eq!(
        (&p.topic[..], &p.payload[..]),
        (&b"wills/raw"[..], &b"gone"[..])
    );
}

/// MQTT 5 §3.1.3.2.2: with a Will Delay Interval the will waits; a new connection to the
/// session within the delay cancels it, and without one it is published after the delay.
#[tokio::test]
async fn v5_will_delay_is_cancelled_by_reconnecting_and_honoured_otherwise() {
    let b = TestBroker::start().await;
    let mut watcher = V5::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q5::AtLeastOnce).await;

    let (c, _) = Raw::connect(
        b.tcp(),
        will_connect(ProtocolVersion::V5, "flaky", Some(1), Some(60)),
    )
    .await;
    drop(c);
    let mut again = will_connect(ProtocolVersion::V5, "flaky", Some(1), Some(60));
    again.clean_start = false;
    let (mut back, connack) = Raw::connect(b.tcp(), again).await;
    assert!(connack.session_present);
    // Watch past the delay: nothing, the client came back in time.
    watcher
        .events
        .none("PUBLISH", Duration::from_millis(1500), |p| {
            matches!(p, r5::Packet::Publish(_))
        })
        .await;

    let gone_at = Instant::now();
    back.send(Packet::PingReq).await;
    assert_eq!(back.recv().await, Some(Packet::PingResp));
    drop(back);
    let p = watcher.publish().await;
    assert_eq!(&p.payload[..], b"gone");
    let waited = gone_at.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "published after the 1 s delay, not at once ({waited:?})"
    );
}

/// MQTT 5 §3.1.3.2.2: the will goes out when the delay passes *or the session ends*,
/// whichever is first: with Session Expiry 0 at once, and when a clean-start reconnect
/// discards the session, then.
#[tokio::test]
async fn v5_delayed_will_is_published_when_the_session_ends_first() {
    let b = TestBroker::start().await;
    let mut watcher = V5::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q5::AtLeastOnce).await;

    let started = Instant::now();
    let (c, _) = Raw::connect(
        b.tcp(),
        will_connect(ProtocolVersion::V5, "no-session", Some(30), None),
    )
    .await;
    drop(c);
    watcher.publish().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "session expiry 0 ends the session at once"
    );

    let (c, _) = Raw::connect(
        b.tcp(),
        will_connect(ProtocolVersion::V5, "replaced", Some(30), Some(60)),
    )
    .await;
    drop(c);
    watcher.no_publish().await;
    let started = Instant::now();
    let _fresh = Raw::connected(b.tcp(), ProtocolVersion::V5, "replaced").await;
    watcher.publish().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a clean-start reconnect ends the old session, which publishes its will"
    );
}

/// MQTT 5 §3.1.3.2: the will's properties (Payload Format Indicator, Content Type,
/// Response Topic, Correlation Data, User Properties, Message Expiry) travel with it.
#[tokio::test]
async fn v5_will_properties_are_passed_through() {
    let b = TestBroker::start().await;
    let mut watcher = V5::connect(b.tcp(), "watcher", |_| {}).await;
    watcher.subscribe("wills/#", Q5::AtLeastOnce).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "rich-will");
    connect.will = Some(LastWill {
        topic: "wills/rich".into(),
        payload: Bytes::from_static(b"{\"state\":\"lost\"}"),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: WillProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(600),
            content_type: Some("application/json".into()),
            response_topic: Some("wills/ack".into()),
            correlation_data: Some(Bytes::from_static(b"c-1")),
            user_properties: vec![("site".into(), "lab".into())],
            ..Default::default()
        },
    });
    let (c, _) = Raw::connect(b.tcp(), connect).await;
    drop(c);
    let p = watcher.publish().await;
    assert_eq!(p.qos, Q5::AtLeastOnce, "QoS 2 will, QoS 1 subscription");
    let props = p.properties.expect("will properties");
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert_eq!(props.response_topic.as_deref(), Some("wills/ack"));
    assert_eq!(props.correlation_data.as_deref(), Some(&b"c-1"[..]));
    assert_eq!(
        props.user_properties,
        vec![("site".to_string(), "lab".to_string())]
    );
    let left = props.message_expiry_interval.expect("expiry forwarded");
    assert!((590..=600).contains(&left), "{left}");
}
