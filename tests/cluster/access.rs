//! Users and the ACL kept in the placement center apply on every broker:
//! `mqtt-broker cluster-user` adds a user once and it can log in anywhere;
//! `mqtt-broker cluster-acl` sets one ACL that every broker enforces until it is cleared.

use std::time::Duration;

use cluster_tests::{start_cluster, unique, Client, TestCluster, WAIT};
use rumqttc::v5::mqttbytes::QoS;

/// Retries `attempt` until it returns true or [`WAIT`] passes (the brokers apply what
/// the placement center stores through a watch, a moment later).
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !attempt().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Subscribes to `filter` until the SUBACK's code is `want`.
async fn subscribe_until(sub: &mut Client, filter: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let codes = sub.subscribe(filter, QoS::AtLeastOnce).await;
        if codes[0].contains(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SUBACK for {filter} never {want}: {codes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(c: &TestCluster, node: u64, password: &'static str) -> Result<Client, String> {
    Client::try_connect_with(c.mqtt(node), &unique("alice"), |o| {
        o.set_credentials("alice", password);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_users_and_acl_apply_on_every_broker() {
    let c = start_cluster().await;
    for user in ["alice", "bob"] {
        let (ok, err) = c.admin(&["cluster-user", user], "s3cret\n");
        assert!(ok, "{err}");
    }
    for node in 1..=3 {
        eventually(&format!("alice logs in on broker {node}"), || async {
            login(&c, node, "s3cret").await.is_ok()
        })
        .await;
        let refused = login(&c, node, "wrong")
            .await
            .err()
            .expect("wrong password refused");
        assert!(refused.contains("BadUserNamePassword"), "{refused}");
    }

    // One ACL for the cluster: only open/# is allowed.
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.toml");
    std::fs::write(
        &acl,
        "default = \"deny\"\n[[rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"open/#\"\n",
    )
    .unwrap();
    let (ok, err) = c.admin(&["cluster-acl", acl.to_str().unwrap()], "");
    assert!(ok, "{err}");
    let mut sub = Client::connect(c.mqtt(3), &unique("sub")).await;
    subscribe_until(&mut sub, "closed/#", "NotAuthorized").await;
    let codes = sub.subscribe("open/#", QoS::AtLeastOnce).await;
    assert!(codes[0].contains("Success"), "{codes:?}");

    // A broken ACL is refused before it is stored, naming the file; the rules stay.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[rules]]\npermission = \"maybe\"\n").unwrap();
    let (ok, err) = c.admin(&["cluster-acl", broken.to_str().unwrap()], "");
    assert!(!ok);
    assert!(err.contains("broken.toml"), "{err}");
    let codes = sub.subscribe("closed/again", QoS::AtLeastOnce).await;
    assert!(codes[0].contains("NotAuthorized"), "{codes:?}");

    // Cleared, each broker's own ACL (none here: allow all) applies again.
    let (ok, err) = c.admin(&["cluster-acl", "--clear"], "");
    assert!(ok, "{err}");
    subscribe_until(&mut sub, "closed/#", "Success").await;
    // Removed, alice can no longer log in (with bob left, logins are still checked;
    // a broker with no users at all lets anyone in where anonymous clients may).
    let (ok, err) = c.admin(&["cluster-user", "--delete", "alice"], "");
    assert!(ok, "{err}");
    eventually("alice is gone from broker 2", || async {
        login(&c, 2, "s3cret").await.is_err()
    })
    .await;
}
