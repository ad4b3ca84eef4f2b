//! Reads and writes through any member; transactions and revisions over gRPC.

use std::time::Duration;

use placement_client::pb;

use crate::harness::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_to_any_member_are_readable_linearizably_from_every_member() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    for i in 0..3 {
        let key = format!("k/{i}");
        let put = cluster
            .client_of(i, Duration::from_secs(5))
            .put(key.clone(), format!("v{i}"))
            .await
            .unwrap();
        let rev = put.header.unwrap().revision;
        // Immediately, from every member, without waiting for replication: read-index.
        for j in 0..3 {
            let kv = cluster
                .client_of(j, Duration::from_secs(5))
                .get(key.clone())
                .await
                .unwrap()
                .expect("key present");
            assert_eq!(
                kv.value,
                format!("v{i}").into_bytes(),
                "member {j} reading what member {i} wrote"
            );
            assert_eq!(kv.mod_revision, rev);
        }
    }
    let status = cluster
        .client_of(leader, Duration::from_secs(5))
        .status()
        .await
        .unwrap();
    assert_eq!(status.leader_id, leader as u64 + 1);
    assert_eq!(status.members.len(), 3);
    assert!(
        status
            .members
            .iter()
            .all(|m| m.voter && m.matched_index.is_some()),
        "{status:?}"
    );
    assert_eq!(status.revision, 3);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_versions_and_transactions_follow_etcd() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    let c = cluster.client();
    let r1 = c.put("a", "1").await.unwrap().header.unwrap().revision;
    // The first call asked a member who leads and went there.
    assert_eq!(
        c.preferred_endpoint(),
        cluster.configs[leader].listen.to_string()
    );
    let r2 = c.put("a", "2").await.unwrap().header.unwrap().revision;
    assert_eq!(r2, r1 + 1);
    let kv = c.get("a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );

    // Compare-and-swap on mod_revision: the first succeeds, the stale one fails.
    let cas = |rev: i64, value: &str| pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"a".to_vec(),
            result: pb::compare::Result::Equal as i32,
            target: Some(pb::compare::Target::ModRevision(rev)),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::Put(pb::PutRequest {
                key: b"a".to_vec(),
                value: value.into(),
                lease: 0,
                prev_kv: true,
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::Get(pb::GetRequest {
                key: b"a".to_vec(),
                serializable: false,
            })),
        }],
    };
    let ok = c.txn(cas(r2, "3")).await.unwrap();
    assert!(ok.succeeded);
    let Some(pb::response_op::Response::Put(p)) = &ok.responses[0].response else {
        panic!("{ok:?}")
    };
    assert_eq!(p.prev_kv.as_ref().unwrap().value, b"2");
    let stale = c.txn(cas(r2, "4")).await.unwrap();
    assert!(!stale.succeeded);
    let Some(pb::response_op::Response::Get(g)) = &stale.responses[0].response else {
        panic!("{stale:?}")
    };
    assert_eq!(g.kv.as_ref().unwrap().value, b"3");
    assert_eq!(
        stale.header.unwrap().revision,
        ok.header.unwrap().revision,
        "a failed txn writes nothing"
    );

    // Range by prefix with a limit, delete and delete-range.
    for i in 0..5 {
        c.put(format!("p/{i}"), "x").await.unwrap();
    }
    let r = c.range("p/", 3).await.unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (3, true, 5));
    assert_eq!(r.kvs[0].key, b"p/0");
    assert_eq!(c.delete("p/0").await.unwrap().deleted, 1);
    assert_eq!(c.delete_prefix("p/").await.unwrap().deleted, 4);
    assert_eq!(c.range("p/", 0).await.unwrap().count, 0);
    // Deleted and re-created: a new create_revision and version 1.
    let r = c.put("p/1", "y").await.unwrap().header.unwrap().revision;
    let kv = c.get("p/1").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (r, 1));
    cluster.shutdown().await;
}
