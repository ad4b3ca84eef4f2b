//! Background loops of a node: Raft metrics and readiness, lease expiry (leader only),
//! and the data directory's size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_metrics::Readiness;
use openraft::ServerState;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::kv::Command;
use crate::node::metrics::{FollowerLabels, RaftGauges};
use crate::node::Core;

/// How often the leader looks for expired leases.
const LEASE_TICK: Duration = Duration::from_millis(200);
/// How often the data directory is measured.
const DISK_TICK: Duration = Duration::from_secs(5);

/// Follows openraft's metrics: gauges, readiness (ready once a leader is known), and a
/// fresh lease clock whenever this node becomes leader.
pub async fn run_raft_metrics(
    core: Arc<Core>,
    gauges: RaftGauges,
    readiness: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = core.raft.metrics();
    let mut last_leader = None;
    let mut last_state = ServerState::Learner;
    loop {
        {
            let m = rx.borrow_and_update().clone();
            if m.current_leader != last_leader {
                if m.current_leader.is_some() {
                    gauges.leader_changes.inc();
                }
                tracing::info!(node = core.id, leader = ?m.current_leader, term = m.current_term, "leader changed");
                last_leader = m.current_leader;
            }
            if m.state != last_state {
                if m.state == ServerState::Candidate {
                    gauges.elections.inc();
                }
                if m.state == ServerState::Leader {
                    // etcd's rule: a new leader restarts every lease at its full TTL.
                    core.leases.refresh_all();
                }
                last_state = m.state;
            }
            gauges
                .leader_status
                .set(i64::from(m.state == ServerState::Leader));
            gauges
                .nodes_total
                .set(m.membership_config.membership().nodes().count() as i64);
            gauges.term.set(m.current_term as i64);
            let last_log = m.last_log_index.unwrap_or(0);
            gauges.last_log_index.set(last_log as i64);
            gauges
                .applied_index
                .set(m.last_applied.map_or(0, |l| l.index) as i64);
            gauges.committed_index.set(core.committed_index() as i64);
            gauges.replication_lag.clear();
            if let Some(replication) = &m.replication {
                for (id, matched) in replication.iter() {
                    if *id == core.id {
                        continue;
                    }
                    let matched = matched.map_or(0, |l| l.index);
                    gauges
                        .replication_lag
                        .get_or_create(&FollowerLabels {
                            follower: id.to_string(),
                        })
                        .set(last_log.saturating_sub(matched) as i64);
                }
            }
            match m.current_leader {
                Some(_) if !*shutdown.borrow() => readiness.set_ready(true),
                Some(_) => {}
                None => readiness.set_not_ready("no raft leader known"),
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// On the leader, revokes leases whose deadline passed, through Raft.
pub async fn run_lease_expiry(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if core.raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let expired = core.leases.expired(Instant::now());
        if expired.is_empty() {
            continue;
        }
        let revokes = expired.iter().map(|&id| {
            let core = core.clone();
            async move {
                match core.propose_local(Command::LeaseRevoke { id }).await {
                    Ok(_) => tracing::info!(lease = id, "lease expired and revoked"),
                    Err(e) => {
                        tracing::debug!(lease = id, error = %e, "revoking an expired lease failed")
                    }
                }
            }
        });
        futures::future::join_all(revokes).await;
    }
}

/// Keeps `robustmq_storage_disk_usage_bytes` up to date.
pub async fn run_disk_usage(dir: PathBuf, gauge: Gauge, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DISK_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let d = dir.clone();
        if let Ok(bytes) =
            tokio::task::spawn_blocking(move || crate::store::metrics::dir_size(&d)).await
        {
            gauge.set(bytes as i64);
        }
    }
}
