//! Security basics: username/password against an argon2 password file, anonymous
//! clients refused where the listener says so, and topic ACLs with `%u`/`%c`.

use std::path::Path;
use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

use mqtt_broker::config::ListenerConfig;
use mqtt_broker::BrokerConfig;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q4;

use crate::harness::*;

const ACL: &str = r#"
default = "deny"
[[rules]]
permission = "deny"
action = "all"
topic = "secret/#"
[[rules]]
permission = "allow"
action = "all"
topic = "devices/%c/#"
[[rules]]
permission = "allow"
action = "all"
topic = "users/%u/#"
[[rules]]
permission = "allow"
action = "subscribe"
topic = "public/#"
"#;

/// The password file, made once per test binary: bob through `set_password` (the real
/// tool, default argon2 cost), alice with the cheapest argon2id parameters, because an
/// unoptimised build takes most of a second per hash and most logins here are alice's.
fn password_file() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        mqtt_broker::auth::set_password(&path, "bob", b"hunter2").unwrap();
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let alice = cheap.hash_password(b"s3cret").unwrap().to_string();
        format!("{}alice:{alice}\n", std::fs::read_to_string(&path).unwrap())
    })
}

fn with_files(dir: &Path, allow_anonymous: Option<bool>) -> impl FnOnce(&mut BrokerConfig) {
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, password_file()).unwrap();
    let acl = dir.join("acl.toml");
    std::fs::write(&acl, ACL).unwrap();
    move |c: &mut BrokerConfig| {
        let mut l = ListenerConfig::tcp("127.0.0.1:0".parse().unwrap());
        l.allow_anonymous = allow_anonymous;
        c.listeners = vec![l];
        c.auth.password_file = Some(passwd);
        c.auth.acl_file = Some(acl);
    }
}

fn v4_login(b: &TestBroker, id: &str, user: &str, password: &str) -> rumqttc::MqttOptions {
    let mut o = V4::options(b.tcp(), id);
    o.set_credentials(user, password);
    o
}

fn v5_login(b: &TestBroker, id: &str, user: &str, password: &str) -> rumqttc::v5::MqttOptions {
    let mut o = V5::options(b.tcp(), id);
    o.set_credentials(user, password);
    o
}

/// MQTT 5 §3.2.2.2 (0x86 Bad User Name or Password, 0x87 Not authorized) and MQTT 3.1.1
/// §3.2.2.3 (return codes 0x04 and 0x05).
#[tokio::test]
async fn password_file_and_anonymous_policy() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::with(with_files(dir.path(), Some(false))).await;

    let ok = V5::connect_with(v5_login(&b, "a5", "alice", "s3cret"))
        .await
        .expect("alice logs in");
    assert_eq!(ok.connack.code, r5::ConnectReturnCode::Success);
    let ok = V4::connect_with(v4_login(&b, "a4", "bob", "hunter2"))
        .await
        .expect("bob logs in");
    assert_eq!(ok.connack.code, rumqttc::ConnectReturnCode::Success);

    let failures = b.metric("robustmq_auth_failures_total", &[]).await;
    for (user, password) in [("alice", "wrong"), ("mallory", "s3cret")] {
        match V5::connect_with(v5_login(&b, "x5", user, password))
            .await
            .map(|c| c.connack)
        {
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                assert_eq!(code, r5::ConnectReturnCode::BadUserNamePassword, "{user}")
            }
            other => panic!("{user}/{password}: expected 0x86, got {other:?}"),
        }
        match V4::connect_with(v4_login(&b, "x4", user, password))
            .await
            .map(|c| c.connack)
        {
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                assert_eq!(
                    code,
                    rumqttc::ConnectReturnCode::BadUserNamePassword,
                    "{user}"
                )
            }
            other => panic!("{user}/{password}: expected 0x04, got {other:?}"),
        }
    }
    match V5::connect_with(V5::options(b.tcp(), "anon5"))
        .await
        .map(|c| c.connack)
    {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, r5::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("anonymous v5: expected 0x87, got {other:?}"),
    }
    match V4::connect_with(V4::options(b.tcp(), "anon4"))
        .await
        .map(|c| c.connack)
    {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("anonymous v4: expected 0x05, got {other:?}"),
    }
    assert_eq!(
        b.metric("robustmq_auth_failures_total", &[]).await,
        failures + 6.0
    );
}

/// Without `allow_anonymous`, a loopback listener accepts anonymous clients (the
/// default), while known users still need their password.
#[tokio::test]
async fn loopback_listener_accepts_anonymous_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::with(with_files(dir.path(), None)).await;
    V4::connect(b.tcp(), "anon", |_| {}).await;
    assert!(V4::connect_with(v4_login(&b, "x", "alice", "nope"))
        .await
        .is_err());
}

/// ACL rules with `%c` and `%u`: an unauthorised PUBLISH is acknowledged (MQTT 5 PUBACK
/// 0x87) but not delivered; an unauthorised SUBSCRIBE is refused in the SUBACK (MQTT 5
/// 0x87, 3.1.1 0x80).
#[tokio::test]
async fn acl_allows_and_denies_publish_and_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::with(with_files(dir.path(), None)).await;

    let mut d2 = V5::connect(b.tcp(), "d2", |_| {}).await;
    assert_eq!(
        d2.subscribe("devices/d2/#", Q5::AtLeastOnce).await,
        vec![r5::SubscribeReasonCode::Success(Q5::AtLeastOnce)]
    );
    let mut d1 = V5::connect(b.tcp(), "d1", |_| {}).await;
    assert_eq!(
        d1.subscribe("devices/d2/#", Q5::AtLeastOnce).await,
        vec![r5::SubscribeReasonCode::NotAuthorized],
        "another device's subtree"
    );
    assert_eq!(
        d1.subscribe("secret/#", Q5::AtLeastOnce).await,
        vec![r5::SubscribeReasonCode::NotAuthorized]
    );
    assert_eq!(
        d1.subscribe("public/news", Q5::AtLeastOnce).await,
        vec![r5::SubscribeReasonCode::Success(Q5::AtLeastOnce)]
    );

    d1.client
        .publish("devices/d2/cmd", Q5::AtLeastOnce, false, "forged")
        .await
        .unwrap();
    let reason = d1
        .events
        .find("PUBACK", |p| match p {
            r5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, r5::PubAckReason::NotAuthorized);
    d2.no_publish().await;
    // d2 may publish into its own subtree, d1 gets nothing of it.
    d2.client
        .publish("devices/d2/state", Q5::AtLeastOnce, false, "ok")
        .await
        .unwrap();
    assert_eq!(&d2.publish().await.payload[..], b"ok");

    // %u: alice may use users/alice/#, not users/bob/#; 3.1.1 SUBACK failure is 0x80.
    let mut alice = V4::connect_with(v4_login(&b, "alice-phone", "alice", "s3cret"))
        .await
        .unwrap();
    assert_eq!(
        alice.subscribe("users/alice/#", Q4::AtLeastOnce).await,
        vec![rumqttc::SubscribeReasonCode::Success(Q4::AtLeastOnce)]
    );
    assert_eq!(
        alice.subscribe("users/bob/#", Q4::AtLeastOnce).await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    alice
        .client
        .publish("users/alice/inbox", Q4::AtLeastOnce, false, "hi")
        .await
        .unwrap();
    assert_eq!(&alice.publish().await.payload[..], b"hi");
    let bob_watch = V4::connect_with(v4_login(&b, "bob-phone", "bob", "hunter2")).await;
    let mut bob = bob_watch.unwrap();
    bob.subscribe("users/bob/#", Q4::AtLeastOnce).await;
    alice
        .client
        .publish("users/bob/inbox", Q4::AtLeastOnce, false, "spoof")
        .await
        .unwrap();
    bob.no_publish().await;
    assert!(
        b.metric(
            "robustmq_messages_dropped_total",
            &[("reason", "acl_denied")]
        )
        .await
            >= 2.0
    );
}

/// The will is authorised as the client that set it: with `%u` rules, alice's will on
/// `users/alice/...` is published, a will outside her subtree is not.
#[tokio::test]
async fn will_is_authorised_as_its_client() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::with(with_files(dir.path(), None)).await;
    let mut watcher = V4::connect_with(v4_login(&b, "alice-watch", "alice", "s3cret"))
        .await
        .unwrap();
    watcher.subscribe("users/alice/#", Q4::AtLeastOnce).await;
    let mut bob_watch = V4::connect_with(v4_login(&b, "bob-watch", "bob", "hunter2"))
        .await
        .unwrap();
    bob_watch.subscribe("users/bob/#", Q4::AtLeastOnce).await;

    let mut o = v4_login(&b, "alice-sensor", "alice", "s3cret");
    o.set_last_will(rumqttc::LastWill::new(
        "users/alice/status",
        "offline",
        Q4::AtLeastOnce,
        false,
    ));
    V4::connect_with(o).await.unwrap().events.kill();
    let p = watcher.publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("users/alice/status", &b"offline"[..])
    );

    let mut o = v4_login(&b, "alice-spoof", "alice", "s3cret");
    o.set_last_will(rumqttc::LastWill::new(
        "users/bob/status",
        "spoofed",
        Q4::AtLeastOnce,
        false,
    ));
    V4::connect_with(o).await.unwrap().events.kill();
    bob_watch.no_publish().await;
}
