//! Node membership through placement-client (`register`, `watch_members`) against a real
//! three-member cluster: epochs, deregistration, expiry by TTL, re-registration after a
//! lost lease, a restarted incarnation fencing the old one, and watching across a leader
//! change.

use std::time::{Duration, Instant};

use placement_client::{node_key, NodeInfo};

use crate::harness::{wait_for, Cluster};

fn info(kind: &str, id: u64) -> NodeInfo {
    NodeInfo {
        kind: kind.into(),
        id,
        grpc: format!("127.0.0.1:{}", 7000 + id),
        metrics: Some(format!("127.0.0.1:{}", 9000 + id)),
        mqtt: (kind == "broker").then(|| format!("127.0.0.1:{}", 1883 + id)),
        version: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_see_registered_nodes_with_distinct_epochs_and_deregistration_at_once() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    let members = client.watch_members("broker").await.unwrap();
    assert!(members.current().is_empty());
    let one = client.register(info("broker", 1), 30).await.unwrap();
    let two = client.register(info("broker", 2), 30).await.unwrap();
    // Another kind under a neighbouring prefix is not a broker.
    let journal = client.register(info("journal", 1), 30).await.unwrap();
    assert_ne!(one.epoch(), two.epoch());
    assert!(
        two.epoch() > one.epoch(),
        "later registrations get higher epochs"
    );

    let seen = wait_for("both brokers in the member map", || async {
        let m = members.current();
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(seen[&1].info, info("broker", 1));
    assert_eq!(seen[&1].epoch, one.epoch());
    assert_eq!(seen[&2].epoch, two.epoch());
    assert_eq!(members.latest_epoch(2), Some(two.epoch()));
    let kv = client.get(node_key("broker", 1)).await.unwrap().unwrap();
    assert_eq!(kv.create_revision as u64, one.epoch());
    assert_eq!(kv.lease, one.lease_id());

    // Deregistration revokes the lease: gone at once, far sooner than the 30 s TTL.
    let start = Instant::now();
    one.deregister().await.unwrap();
    let mut changes = members.changes();
    wait_for("broker 1 to leave", || async {
        (!members.current().contains_key(&1)).then_some(())
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(changes.has_changed().unwrap());
    let now = changes.borrow_and_update().clone();
    assert_eq!(now.keys().copied().collect::<Vec<_>>(), [2]);
    assert!(client.get(node_key("broker", 1)).await.unwrap().is_none());
    // A late request from the departed node's incarnation is not stale: nothing newer exists.
    assert!(!members.is_stale(1, members.latest_epoch(1).unwrap()));

    two.deregister().await.unwrap();
    journal.deregister().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_keep_alive_stops_disappears_after_its_ttl_while_a_kept_one_stays() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    let members = client.watch_members("journal").await.unwrap();
    let kept = client.register(info("journal", 1), 1).await.unwrap();
    let dropped = client.register(info("journal", 2), 1).await.unwrap();
    wait_for("both journal nodes", || async {
        (members.current().len() == 2).then_some(())
    })
    .await;

    let start = Instant::now();
    drop(dropped); // the keep-alive stops; nothing is revoked
    wait_for("journal 2 to expire", || async {
        (!members.current().contains_key(&2)).then_some(())
    })
    .await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "expired after {took:?}");
    // Node 1, with the same 1 s TTL, outlived node 2's expiry because it is kept alive.
    let now = members.current();
    assert_eq!(now.keys().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(now[&1].epoch, kept.epoch());
    kept.deregister().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_revoked_behind_its_back_makes_the_node_register_again_with_a_higher_epoch() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    let members = client.watch_members("broker").await.unwrap();
    let reg = client.register(info("broker", 3), 1).await.unwrap();
    let (old_epoch, old_lease) = (reg.epoch(), reg.lease_id());
    let mut epochs = reg.epochs();

    client.lease_revoke(old_lease).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), epochs.changed())
        .await
        .expect("registered again")
        .unwrap();
    let new_epoch = *epochs.borrow();
    assert!(new_epoch > old_epoch, "{new_epoch} > {old_epoch}");
    assert_eq!(reg.epoch(), new_epoch);
    assert_ne!(reg.lease_id(), old_lease);
    let kv = client.get(node_key("broker", 3)).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision as u64, kv.lease),
        (new_epoch, reg.lease_id())
    );
    wait_for("the watcher to see the new epoch", || async {
        (members.current().get(&3)?.epoch == new_epoch).then_some(())
    })
    .await;
    assert!(
        members.is_stale(3, old_epoch),
        "the old incarnation is fenced"
    );
    assert!(!members.is_stale(3, new_epoch));
    reg.deregister().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_replaces_its_live_old_incarnation_with_a_higher_epoch() {
    let cluster = Cluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let client = cluster.client();
    let members = client.watch_members("broker").await.unwrap();
    // The old process is still renewing its lease when the new one starts (a zombie).
    let zombie = client.register(info("broker", 4), 30).await.unwrap();
    let mut restarted = info("broker", 4);
    restarted.grpc = "127.0.0.1:7999".into();
    let fresh = client.register(restarted.clone(), 30).await.unwrap();
    assert!(fresh.epoch() > zombie.epoch());
    let kv = client.get(node_key("broker", 4)).await.unwrap().unwrap();
    assert_eq!(
        kv.lease,
        fresh.lease_id(),
        "the key belongs to the new lease"
    );
    let member = wait_for("the new incarnation", || async {
        let m = members.current().get(&4)?.clone();
        (m.epoch == fresh.epoch()).then_some(m)
    })
    .await;
    assert_eq!(member.info, restarted);
    assert!(members.is_stale(4, zombie.epoch()));
    // The zombie's deregistration revokes only its own lease: the new key stays.
    zombie.deregister().await.unwrap();
    let kv = client.get(node_key("broker", 4)).await.unwrap().unwrap();
    assert_eq!(kv.create_revision as u64, fresh.epoch());
    fresh.deregister().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_and_registrations_survive_a_leader_change() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client();
    let members = client.watch_members("journal").await.unwrap();
    let one = client.register(info("journal", 1), 2).await.unwrap();
    wait_for("journal 1", || async {
        members.current().contains_key(&1).then_some(())
    })
    .await;
    cluster.stop(leader).await;
    cluster.wait_leader().await;
    let two = client.register(info("journal", 2), 2).await.unwrap();
    wait_for("journal 2 after the leader change", || async {
        (members.current().len() == 2).then_some(())
    })
    .await;
    // The new leader restarted every lease at its full TTL and the keep-alive moved over:
    // node 1 is still registered, under the epoch its registration reports.
    wait_for("journal 1 under its current epoch", || async {
        (members.current().get(&1)?.epoch == one.epoch()).then_some(())
    })
    .await;
    two.deregister().await.unwrap();
    wait_for("journal 2 to leave", || async {
        (!members.current().contains_key(&2)).then_some(())
    })
    .await;
    one.deregister().await.unwrap();
    cluster.shutdown().await;
}
