//! Leader loss, restarts (log and snapshot catch-up) and partitions.

use std::time::Duration;

use crate::harness::{wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_elects_another_and_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let old = cluster.wait_leader().await;
    let client = cluster.client();
    for i in 0..30 {
        client
            .put(format!("w/{i:02}"), format!("{i}"))
            .await
            .unwrap();
    }
    cluster.stop(old).await;
    let new = cluster.wait_leader().await;
    assert_ne!(new, old);
    // Every acknowledged write is there, and the cluster takes new ones.
    let r = client.range("w/", 0).await.unwrap();
    assert_eq!(r.count, 30);
    for i in 30..40 {
        client
            .put(format!("w/{i:02}"), format!("{i}"))
            .await
            .unwrap();
    }
    // The client found the new leader by itself.
    assert_eq!(
        client.preferred_endpoint(),
        cluster.configs[new].listen.to_string()
    );
    // The old leader comes back as a follower and catches up from the log.
    cluster.restart(old).await;
    let back = cluster.client_of(old, Duration::from_secs(5));
    wait_for("the restarted member to catch up", || async {
        let r = back.range_with(placement_client::pb::RangeRequest {
            prefix: b"w/".to_vec(),
            limit: 0,
            serializable: true,
            keys_only: true,
        });
        (r.await.ok()?.count == 40).then_some(())
    })
    .await;
    assert_eq!(back.get("w/39").await.unwrap().unwrap().value, b"39");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_member_catches_up_by_snapshot_when_the_log_was_purged() {
    let mut cluster = Cluster::start(3, |c| {
        c.raft.snapshot_after_entries = 20;
        c.raft.logs_to_keep_after_snapshot = 5;
        c.raft.max_batch = 1;
    })
    .await;
    let leader = cluster.wait_leader().await;
    let lagger = (leader + 1) % 3;
    cluster.stop(lagger).await;
    let client = cluster.client();
    for i in 0..120 {
        client
            .put(format!("s/{i:03}"), vec![b'x'; 100])
            .await
            .unwrap();
    }
    let purged = wait_for("the leader to purge its log", || async {
        let m = cluster.node(leader).core().raft.metrics().borrow().clone();
        m.purged.filter(|p| p.index > 50).map(|p| p.index)
    })
    .await;
    cluster.restart(lagger).await;
    let back = cluster.client_of(lagger, Duration::from_secs(5));
    wait_for(
        "the restarted member to install a snapshot and catch up",
        || async {
            let r = back.range_with(placement_client::pb::RangeRequest {
                prefix: b"s/".to_vec(),
                limit: 0,
                serializable: true,
                keys_only: true,
            });
            (r.await.ok()?.count == 120).then_some(())
        },
    )
    .await;
    let m = cluster.node(lagger).core().raft.metrics().borrow().clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index >= purged),
        "caught up through a snapshot: {m:?}"
    );
    // Data written after the snapshot still flows through the log.
    client.put("s/after", "y").await.unwrap();
    assert_eq!(back.get("s/after").await.unwrap().unwrap().value, b"y");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_cannot_accept_writes_and_the_majority_moves_on() {
    let cluster = Cluster::start(3, |c| c.raft.request_timeout_ms = 1_000).await;
    let old = cluster.wait_leader().await;
    cluster.client().put("before", "1").await.unwrap();
    cluster.node(old).set_isolated(true);

    // The minority side: neither writes nor linearizable reads succeed.
    let minority = cluster.client_of(old, Duration::from_secs(2));
    assert!(
        minority.put("lost", "x").await.is_err(),
        "an isolated leader must not acknowledge a write"
    );
    assert!(
        minority.get("before").await.is_err(),
        "an isolated leader must not serve linearizable reads"
    );

    // The majority elects a new leader and takes writes.
    let new = wait_for("the majority to elect a new leader", || async {
        (0..3).filter(|&i| i != old).find_map(|i| {
            let m = cluster.node(i).core().raft.metrics().borrow().clone();
            m.current_leader
                .filter(|&l| l as usize - 1 != old)
                .map(|l| l as usize - 1)
        })
    })
    .await;
    let majority = cluster.client_of(new, Duration::from_secs(5));
    majority.put("after", "2").await.unwrap();

    // Healed: the old leader follows, its unacknowledged write is gone, it has the new one.
    cluster.node(old).set_isolated(false);
    let healed = cluster.client_of(old, Duration::from_secs(5));
    wait_for("the old leader to rejoin", || async {
        healed.get("after").await.ok().flatten()
    })
    .await;
    assert!(healed.get("lost").await.unwrap().is_none());
    assert!(majority.get("lost").await.unwrap().is_none());
    cluster.shutdown().await;
}
