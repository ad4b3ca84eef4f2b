//! A peer broker that stops taking forwarded messages: with its forward queue full, QoS
//! 1 publishers wait (every message arrives later, in order) and QoS 0 messages wait a
//! little, then are dropped with a count (received + counted drops = published, never a
//! silent loss).
//!
//! The receiving broker is frozen with SIGSTOP, which stops its forward stream as a slow
//! or overloaded peer would; it is resumed well inside its lease.

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::{start_cluster_with, unique, Client, TestCluster};
use local_cluster::Service;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;

/// Waits until broker `node`'s metric `name` is above zero; panics after `within`.
async fn metric_rises(c: &TestCluster, node: u64, name: &str, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let got = c.broker_metric(node, name).await;
        if got > 0.0 {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on broker {node} stayed at 0\n{}",
            c.log(&format!("mqtt-broker-{node}"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` (`STOP` or `CONT`) to broker `node`.
fn signal_broker(c: &TestCluster, node: u64, signal: &str) {
    let pid = c
        .cluster
        .pid(Service::MqttBroker, node)
        .expect("broker running");
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Publishes payloads `0`..`n` to `topic` without waiting for acknowledgements.
async fn publish_numbered(publisher: &Client, topic: &str, qos: QoS, n: u32) {
    for i in 0..n {
        publisher
            .client
            .publish(topic, qos, false, i.to_string())
            .await
            .expect("PUBLISH queued");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_forward_queue_holds_qos1_back_and_counts_qos0_drops() {
    // One message per queue and per batch: a stopped peer fills the queue after the
    // sender's window of batches in flight (32), so 100 messages must meet it full.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[cluster]\nforward_queue = 1\nforward_batch = 1\n")
        .expect("config written");
    let c = start_cluster_with(|plan| plan.broker_config = Some(config.clone())).await;
    let topic = unique("backpressure");
    let mut sub = Client::connect(c.mqtt(2), &unique("bsub")).await;
    sub.subscribe(&format!("{topic}/+"), QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("bpub")).await;

    // QoS 1: nothing is lost, nothing is reordered, and some messages waited.
    signal_broker(&c, 2, "STOP");
    publish_numbered(&publisher, &format!("{topic}/1"), QoS::AtLeastOnce, 100).await;
    let waited = metric_rises(
        &c,
        1,
        "robustmq_cluster_forward_waited_messages_total",
        Duration::from_secs(3),
    )
    .await;
    signal_broker(&c, 2, "CONT");
    let mut got = Vec::new();
    while got.len() < 100 {
        got.push(sub.received().await);
    }
    let payloads: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    let sent: Vec<String> = (0..100).map(|i: i32| i.to_string()).collect();
    assert_eq!(
        payloads, sent,
        "every QoS 1 message, in order ({waited} waited)"
    );
    assert!(sub.drain().await.is_empty(), "one copy each");
    // The PUBACKs, released many at a time by the peer's answers, keep the order of
    // the PUBLISHes (MQTT-4.6.0-2).
    let mut acked = Vec::new();
    while acked.len() < 100 {
        let pkid = publisher
            .expect("PUBACK", |p| match p {
                Packet::PubAck(ack) => Some(ack.pkid),
                _ => None,
            })
            .await;
        acked.push(pkid);
    }
    assert!(
        acked.windows(2).all(|w| w[0] < w[1]),
        "PUBACKs in publish order: {acked:?}"
    );

    // QoS 0: what does not fit waits `forward_qos0_wait_ms` (default 5), then is
    // dropped and counted.
    let waited_qos1 = c
        .broker_metric(1, "robustmq_cluster_forward_waited_messages_total")
        .await;
    signal_broker(&c, 2, "STOP");
    publish_numbered(&publisher, &format!("{topic}/0"), QoS::AtMostOnce, 200).await;
    let dropped = metric_rises(
        &c,
        1,
        "robustmq_cluster_forward_dropped_total",
        Duration::from_secs(3),
    )
    .await;
    // Every QoS 0 PUBLISH has been read once the drops stop growing.
    let mut settled = dropped;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = c
            .broker_metric(1, "robustmq_cluster_forward_dropped_total")
            .await;
        if now == settled {
            break;
        }
        settled = now;
    }
    signal_broker(&c, 2, "CONT");
    let waited = c
        .broker_metric(1, "robustmq_cluster_forward_waited_messages_total")
        .await;
    assert!(waited > waited_qos1, "QoS 0 messages waited for room first");
    let received = sub.drain().await.len();
    assert_eq!(
        received as f64 + settled,
        200.0,
        "QoS 0: {received} received + {settled} dropped and counted = 200 published"
    );
    c.cluster.stop().await.expect("graceful stop");
}
