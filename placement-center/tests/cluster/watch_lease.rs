//! Watches across a leader change; lease expiry applied through Raft.

use std::time::Duration;

use crate::harness::{wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_sees_every_event_in_order_across_a_leader_change() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client();
    let mut watch = client.watch("ev/", true, 1).await.unwrap();
    for i in 0..10 {
        client.put(format!("ev/{i:02}"), "x").await.unwrap();
    }
    client.delete("ev/00").await.unwrap();
    cluster.stop(leader).await;
    for i in 10..20 {
        client.put(format!("ev/{i:02}"), "x").await.unwrap();
    }
    let mut events = Vec::new();
    while events.len() < 21 {
        let resp = tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("events arrive")
            .unwrap();
        events.extend(resp.events);
    }
    assert_eq!(events.len(), 21, "no duplicates");
    let revs: Vec<i64> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing revisions: {revs:?}"
    );
    let keys: Vec<String> = events
        .iter()
        .map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap())
        .collect();
    assert_eq!(keys[10], "ev/00");
    assert_eq!(
        events[10].r#type,
        placement_client::pb::event::EventType::Delete as i32
    );
    assert_eq!(keys[20], "ev/19");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_deletes_its_keys_on_every_member_and_keep_alive_prevents_it() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    let short = client.lease_grant(1).await.unwrap();
    let kept = client.lease_grant(1).await.unwrap();
    assert_ne!(short.id, kept.id);
    let keeper = client.keep_alive(kept.id, kept.ttl);
    for (key, lease) in [("l/short", short.id), ("l/kept", kept.id)] {
        client
            .put_with(placement_client::pb::PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                lease,
                prev_kv: false,
            })
            .await
            .unwrap();
    }
    let mut watch = client.watch("l/short", false, 0).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("expiry event")
        .unwrap();
    assert_eq!(
        event.events[0].r#type,
        placement_client::pb::event::EventType::Delete as i32
    );
    let expired_at = event.events[0].kv.as_ref().unwrap().mod_revision;
    // Every replica deleted it at the same revision.
    for i in 0..3 {
        let c = cluster.client_of(i, Duration::from_secs(5));
        let r = c.get_with(placement_client::pb::GetRequest {
            key: b"l/short".to_vec(),
            serializable: false,
        });
        let r = r.await.unwrap();
        assert!(r.kv.is_none());
        assert!(r.header.unwrap().revision >= expired_at);
    }
    // Two TTLs later the kept lease and its key are still there.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert!(keeper.is_alive());
    assert!(client.get("l/kept").await.unwrap().is_some());
    drop(keeper);
    wait_for("the unkept lease to expire", || async {
        client.get("l/kept").await.unwrap().is_none().then_some(())
    })
    .await;
    let err = client.lease_revoke(kept.id).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    cluster.shutdown().await;
}
