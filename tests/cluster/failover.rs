//! Failures: a broker killed with SIGKILL leaves the cluster when its lease expires (its
//! routes go with it); the placement-center leader killed while clients publish stops
//! neither publishing (routes are cached) nor, once a new leader is up, subscribing.

use std::time::{Duration, Instant};

use cluster_tests::{start_cluster, unique, Client, TestCluster, WAIT};
use local_cluster::Service;
use rumqttc::v5::mqttbytes::QoS;

/// Waits until broker `node`'s metric `name` equals `want`.
async fn metric_becomes(c: &TestCluster, node: u64, name: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = c.broker_metric(node, name).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on broker {node} stayed at {got}, expected {want}\n{}",
            c.log(&format!("mqtt-broker-{node}"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_leaves_and_the_rest_keep_serving() {
    let mut c = start_cluster().await;
    metric_becomes(&c, 1, "robustmq_cluster_peers", 2.0, WAIT).await;
    let topic = unique("survivor");
    let mut doomed = Client::connect(c.mqtt(3), &unique("doomed")).await;
    doomed.subscribe(&topic, QoS::AtLeastOnce).await;
    let mut sub = Client::connect(c.mqtt(2), &unique("alive")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;

    c.cluster
        .kill(Service::MqttBroker, 3)
        .await
        .expect("SIGKILL broker 3");
    // The lease (5 s) expires; broker 3's registration and routes disappear.
    metric_becomes(&c, 1, "robustmq_cluster_peers", 1.0, WAIT).await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("pub")).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "after")
        .await;
    assert_eq!(&sub.received().await.payload[..], b"after");
    assert_eq!(
        c.broker_metric(1, "robustmq_cluster_forward_dropped_total")
            .await,
        0.0,
        "nothing is forwarded to the dead broker once its routes are gone"
    );

    // It comes back under a new epoch and takes part again.
    c.cluster
        .restart(Service::MqttBroker, 3)
        .await
        .expect("broker 3 restarts");
    metric_becomes(&c, 1, "robustmq_cluster_peers", 2.0, WAIT).await;
    let mut back = Client::connect(c.mqtt(3), &unique("back")).await;
    back.subscribe(&topic, QoS::AtLeastOnce).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "again")
        .await;
    assert_eq!(&back.received().await.payload[..], b"again");
    drop(doomed);
    c.cluster.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_survives_the_placement_leader() {
    let mut c = start_cluster().await;
    let topic = unique("steady");
    let mut sub = Client::connect(c.mqtt(2), &unique("steady-sub")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("steady-pub")).await;

    let leader = c.placement_leader().await;
    c.cluster
        .kill(Service::PlacementCenter, leader)
        .await
        .expect("SIGKILL the placement leader");
    // Publishing does not touch the placement center: every message arrives while the
    // remaining members elect a leader.
    for i in 0..20 {
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, format!("{i}"))
            .await;
        assert_eq!(sub.received().await.payload, format!("{i}").into_bytes());
    }
    // A new subscription needs the route table: it succeeds once a leader is elected.
    let late_topic = unique("late");
    let mut late = Client::connect(c.mqtt(3), &unique("late-sub")).await;
    let codes = late.subscribe(&late_topic, QoS::AtLeastOnce).await;
    assert!(codes[0].contains("Success"), "SUBACK {codes:?}");
    publisher
        .publish(&late_topic, QoS::AtLeastOnce, false, "new")
        .await;
    assert_eq!(&late.received().await.payload[..], b"new");
    c.cluster.stop().await.expect("graceful stop");
}
