//! Admin RPCs: a fourth node joins as a learner, catches up, becomes a voter.

use std::time::Duration;

use placement_center::Node;

use crate::harness::{test_config, wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_is_added_as_learner_then_promoted_to_voter() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    client.put("m/before", "1").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = test_config(4, dir.path(), addr);
    config.initial_cluster = cluster.configs[0].initial_cluster.clone();
    let identity = common_metrics::Identity::from_lookup("placement-center", "test", |_| None);
    let fourth = Node::start_with_listeners(config, &identity, listener, None)
        .await
        .unwrap();

    // Sent to any member: a follower forwards it to the leader.
    let status = client.add_learner(4, addr.to_string()).await.unwrap();
    let learner = status
        .members
        .iter()
        .find(|m| m.id == 4)
        .expect("node 4 listed");
    assert!(!learner.voter);
    let status = client.change_membership(vec![1, 2, 3, 4]).await.unwrap();
    assert_eq!(
        status.members.iter().filter(|m| m.voter).count(),
        4,
        "{status:?}"
    );

    // The new voter has the data and serves linearizable reads.
    let only_fourth = placement_client::PlacementClient::new(
        placement_client::ClientConfig::new([addr.to_string()])
            .with_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(
        only_fourth.get("m/before").await.unwrap().unwrap().value,
        b"1"
    );
    wait_for("node 4 to know the leader", || async {
        fourth.is_ready().then_some(())
    })
    .await;
    let status = cluster
        .client_of(cluster.wait_leader().await, Duration::from_secs(5))
        .status()
        .await
        .unwrap();
    assert_eq!(status.members.len(), 4);
    assert!(
        status.members.iter().all(|m| m.matched_index.is_some()),
        "{status:?}"
    );
    // Membership changes need a leader: an invalid one is refused with a clear code.
    let err = client.change_membership(vec![]).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
    fourth.shutdown().await;
    cluster.shutdown().await;
}
