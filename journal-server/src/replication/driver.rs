//! The per-shard replication task: runs whatever the replica's role asks for — leader
//! upkeep on a heartbeat, the follower's fetch loop, or waiting for the election
//! deadline and campaigning — and re-evaluates whenever the role changes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::state::Role;
use super::Replica;

/// Pause after a failed fetch before the next attempt (the leader may be restarting).
const RETRY: Duration = Duration::from_millis(50);

/// Runs the replication of `replica` until `shutdown`.
pub async fn run(replica: Arc<Replica>, shutdown: CancellationToken) {
    let heartbeat = replica.config.heartbeat_interval();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let (role, leader) = {
            let st = replica.lock();
            (st.role, st.leader)
        };
        let deadline = replica
            .election_deadline()
            .map(tokio::time::Instant::from_std);
        if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            campaign(&replica).await;
            continue;
        }
        let election = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // One step per role; every branch also wakes on a role change (an announcement,
        // a vote for someone else, a newer epoch seen in a fetch) and on shutdown.
        match (role, leader) {
            (Role::Leader, _) => tokio::select! {
                _ = tokio::time::sleep(heartbeat) => replica.leader_tick(),
                _ = replica.role_changed.notified() => {}
                _ = shutdown.cancelled() => break,
            },
            (Role::Follower, Some(leader)) => tokio::select! {
                result = replica.fetch_from(leader) => {
                    if let Err(e) = result {
                        tracing::debug!(shard = %replica.shard, leader, error = %e, "fetch failed");
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                _ = election => campaign(&replica).await,
                _ = replica.role_changed.notified() => {}
                _ = shutdown.cancelled() => break,
            },
            _ => tokio::select! {
                _ = election => campaign(&replica).await,
                _ = replica.role_changed.notified() => {}
                _ = shutdown.cancelled() => break,
            },
        }
    }
    replica.resign();
}

async fn campaign(replica: &Replica) {
    if let Err(e) = replica.campaign().await {
        tracing::warn!(shard = %replica.shard, error = %e, "election attempt failed");
        replica.restart_election_clock();
        tokio::time::sleep(RETRY).await;
    }
}
