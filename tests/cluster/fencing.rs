//! Fencing: a broker process that was replaced by a newer incarnation of the same node
//! (it was paused or partitioned past its lease, or lingers after a restart) is refused
//! by its peers: what it forwards is not delivered. And a batch that a sender resends
//! (its stream broke before the answer came) is delivered once.

use cluster_tests::{start_cluster, unique, Client, TestCluster};
use local_cluster::Service;
use placement_client::node_key;
use robustmq_proto::broker as pb;
use robustmq_proto::broker::broker_internal_client::BrokerInternalClient;
use rumqttc::v5::mqttbytes::QoS;

/// Broker `node`'s epoch: the create revision of its registration.
async fn epoch_of(c: &TestCluster, node: u64) -> u64 {
    let kv = c
        .cluster
        .placement_client()
        .get(node_key("broker", node))
        .await
        .expect("placement get")
        .expect("broker registered");
    kv.create_revision as u64
}

/// Sends one batch as node `from` with `epoch` to broker 1, its message numbered `seq`
/// by sending task `stream_id`, on a stream of its own; the first answer.
async fn forward_as(
    c: &TestCluster,
    from: u64,
    epoch: u64,
    topic: &str,
    (stream_id, seq): (u64, u64),
) -> Result<pb::ForwardResponse, tonic::Status> {
    let grpc = c
        .cluster
        .node(Service::MqttBroker, 1)
        .expect("broker 1")
        .grpc;
    let mut client = BrokerInternalClient::connect(format!("http://{grpc}"))
        .await
        .expect("broker 1 gRPC");
    let request = pb::ForwardRequest {
        from_node: from,
        epoch,
        messages: vec![pb::ForwardedMessage {
            topic: bytes::Bytes::copy_from_slice(topic.as_bytes()),
            payload: format!("epoch {epoch}").into_bytes().into(),
            qos: 1,
            publisher: bytes::Bytes::from_static(b"zombie-test"),
            seq,
            ..Default::default()
        }],
        stream_id,
    };
    let mut answers = client
        .forward_stream(futures::stream::iter([request]))
        .await?
        .into_inner();
    answers
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unavailable("no answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_incarnation_cannot_deliver() {
    let mut c = start_cluster().await;
    let old = epoch_of(&c, 3).await;
    c.cluster
        .kill(Service::MqttBroker, 3)
        .await
        .expect("SIGKILL broker 3");
    c.cluster
        .restart(Service::MqttBroker, 3)
        .await
        .expect("broker 3 restarts");
    let new = epoch_of(&c, 3).await;
    assert!(
        new > old,
        "a new incarnation gets a higher epoch ({old} → {new})"
    );

    let topic = unique("fenced");
    let mut sub = Client::connect(c.mqtt(1), &unique("fenced-sub")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    // The current incarnation is heard...
    let answer = forward_as(&c, 3, new, &topic, (0, 0))
        .await
        .expect("current epoch accepted");
    assert_eq!(answer.delivered, 1);
    assert_eq!(
        sub.received().await.payload,
        format!("epoch {new}").into_bytes()
    );
    // ...the replaced one is refused and delivers nothing.
    let refused = forward_as(&c, 3, old, &topic, (0, 0))
        .await
        .expect_err("stale epoch refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        sub.drain().await.is_empty(),
        "nothing from the stale incarnation"
    );

    // A resent batch: the same sending task and number on a new stream.
    for (attempt, expected) in [(1, 1), (2, 0)] {
        let answer = forward_as(&c, 3, new, &topic, (42, 7))
            .await
            .expect("current epoch accepted");
        assert_eq!(answer.delivered, expected, "attempt {attempt}");
    }
    assert_eq!(sub.drain().await.len(), 1, "delivered once");
    let metrics = local_cluster::probe::metrics_text(
        c.cluster
            .node(Service::MqttBroker, 1)
            .expect("broker 1")
            .metrics,
    )
    .await
    .expect("broker 1 metrics");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("robustmq_cluster_forward_repeated_messages_total{")
                && l.ends_with(" 1")
        ),
        "the repeat is counted:\n{metrics}"
    );
    c.cluster.stop().await.expect("graceful stop");
}
