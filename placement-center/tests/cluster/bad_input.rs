//! Bad input gets clear gRPC codes and leaves the data intact.

use std::time::Duration;

use placement_center::Node;
use placement_client::pb;
use tonic::Code;

use crate::harness::{test_config, Cluster};

/// The gRPC code of a failed call.
fn code<T>(r: Result<T, placement_client::Error>) -> Option<Code> {
    r.map(|_| ()).unwrap_err().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_clear_codes_and_change_nothing() {
    let cluster = Cluster::start(3, |c| {
        c.max_value_size = 1024;
        c.watch_history = 5;
    })
    .await;
    cluster.wait_leader().await;
    let c = cluster.client();
    c.put("good", "1").await.unwrap();

    // Unknown keys are not errors, as in etcd: empty answers.
    assert!(c.get("missing").await.unwrap().is_none());
    assert_eq!(c.delete("missing").await.unwrap().deleted, 0);
    assert_eq!(c.range("missing/", 0).await.unwrap().count, 0);

    assert_eq!(
        code(c.put("big", vec![0u8; 1025]).await),
        Some(Code::InvalidArgument)
    );
    assert_eq!(code(c.put("", "x").await), Some(Code::InvalidArgument));
    assert_eq!(code(c.delete_prefix("").await), Some(Code::InvalidArgument));
    assert_eq!(code(c.lease_grant(0).await), Some(Code::InvalidArgument));
    assert_eq!(code(c.lease_revoke(424242).await), Some(Code::NotFound));
    let with_lease = pb::PutRequest {
        key: b"leased".to_vec(),
        value: b"v".to_vec(),
        lease: 424242,
        prev_kv: false,
    };
    assert_eq!(code(c.put_with(with_lease).await), Some(Code::NotFound));
    let bad_range = pb::RangeRequest {
        prefix: b"x".to_vec(),
        limit: -1,
        serializable: false,
        keys_only: false,
    };
    assert_eq!(
        code(c.range_with(bad_range).await),
        Some(Code::InvalidArgument)
    );
    let no_target = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"good".to_vec(),
            result: 0,
            target: None,
        }],
        success: vec![],
        failure: vec![],
    };
    assert_eq!(code(c.txn(no_target).await), Some(Code::InvalidArgument));

    // Watch revisions: negative is invalid; older than the kept history is OUT_OF_RANGE.
    assert_eq!(
        code(c.watch("good", false, -3).await),
        Some(Code::InvalidArgument)
    );
    for i in 0..10 {
        c.put("churn", format!("{i}")).await.unwrap();
    }
    assert_eq!(
        code(c.watch("good", false, 1).await),
        Some(Code::OutOfRange)
    );

    // Nothing was corrupted: the data is as written and the cluster still writes.
    assert_eq!(c.get("good").await.unwrap().unwrap().value, b"1");
    assert!(c.get("big").await.unwrap().is_none() && c.get("leased").await.unwrap().is_none());
    c.put("good", "2").await.unwrap();
    assert_eq!(c.get("good").await.unwrap().unwrap().version, 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_any_cluster_refuses_with_failed_precondition() {
    common_metrics::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = test_config(9, dir.path(), addr);
    // Node 9 is not in the initial cluster: it waits to be added and serves nothing.
    config.initial_cluster = "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3".into();
    let identity = common_metrics::Identity::from_lookup("placement-center", "test", |_| None);
    let node = Node::start_with_listeners(config, &identity, listener, None)
        .await
        .unwrap();
    let client = placement_client::PlacementClient::new(
        placement_client::ClientConfig::new([addr.to_string()])
            .with_timeout(Duration::from_secs(3)),
    )
    .unwrap();
    assert_eq!(
        client.put("k", "v").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(
        client.get("k").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );
    let status = client.status().await.unwrap();
    assert_eq!((status.leader_id, status.members.len()), (0, 0));
    assert!(!node.is_ready());
    node.shutdown().await;
}
