//! Replication of one shard: leader appends, followers fetch, acks=all over the ISR,
//! leader epochs, elections among the replicas.
//!
//! Pieces: [`state`] (the rules, pure), [`stable`] (the persisted vote), `leader`
//! (serving fetches, ISR upkeep), `follower` (fetching, truncating to the leader),
//! `election` (pre-vote, vote, announcements), `driver` (the per-shard task that runs
//! whichever role the replica has), [`peers`] (clients to other nodes).
//!
//! Coordination without a placement center: leader election is a Raft-style vote among
//! the shard's replicas, with leader epochs as terms, persisted votes, a pre-vote round
//! and leader stickiness (a replica that hears from a live leader votes for nobody).
//! Safety rests on three facts: a candidate needs a majority of votes, a vote goes only
//! to a log at least as up to date (last epoch, then end offset), and a record is
//! acknowledged only when a majority (the ISR, never smaller than a majority) has it
//! durably and has recorded the current leader's epoch start. So a new leader always
//! holds every acknowledged record, and followers truncate anything else to the leader's
//! epoch boundaries. What this cannot do: make progress without a majority of replicas,
//! or move a replica to another node — that is the placement center's job later.

mod driver;
mod election;
mod follower;
mod leader;
pub mod peers;
pub mod stable;
pub mod state;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

pub use self::driver::run as run_driver;
use self::peers::Peers;
use self::stable::{StableState, VoteRecord};
use self::state::{ReplicaState, Role};
use crate::config::{NodeId, ReplicationConfig};
use crate::error::{JournalError, Result};
use crate::group_commit::{WriteFence, Writer};
use crate::log::Log;
use crate::metrics::ReplicationMetrics;
use crate::record::NewRecord;

/// What readers and waiters of a shard replica watch: role, epoch, leader, committed end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    pub role: Role,
    pub epoch: u64,
    pub leader: Option<NodeId>,
    /// High watermark: readers see offsets below it.
    pub hw: u64,
}

/// A replica as the leader sees it, for `ShardInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub node_id: NodeId,
    pub in_sync: bool,
    /// Log end as last reported (the leader's own for itself); `None` when unknown.
    pub log_end: Option<u64>,
}

/// The replication side of one shard replica.
#[derive(Debug)]
pub struct Replica {
    shard: String,
    node_id: NodeId,
    config: ReplicationConfig,
    log: Arc<Log>,
    writer: Writer,
    /// Shared with the writer: the epoch whose appends it accepts (0: none).
    fence: WriteFence,
    state: Mutex<ReplicaState>,
    /// The persisted epoch and vote; locked after `state` when both are needed.
    stable: Mutex<StableState>,
    view: watch::Sender<ShardView>,
    /// Wakes the driver when role, epoch or leader change.
    role_changed: Notify,
    peers: Arc<Peers>,
    metrics: ReplicationMetrics,
    /// One campaign at a time (the driver's and `elect_if_alone`'s).
    campaigning: tokio::sync::Mutex<()>,
}

impl Replica {
    /// The replication state of a shard replica whose log and writer are open.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: String,
        node_id: NodeId,
        replicas: Vec<NodeId>,
        config: ReplicationConfig,
        log: Arc<Log>,
        writer: Writer,
        fence: WriteFence,
        peers: Arc<Peers>,
        metrics: ReplicationMetrics,
    ) -> Result<Self> {
        let stable = StableState::load(log.dir())?;
        let VoteRecord { epoch, voted_for } = stable.get();
        let min_insync = config.effective_min_insync(replicas.len());
        let state = ReplicaState::new(
            node_id,
            replicas,
            min_insync,
            epoch,
            voted_for,
            Instant::now(),
        );
        let (view, _) = watch::channel(ShardView {
            role: Role::Follower,
            epoch,
            leader: None,
            hw: 0,
        });
        Ok(Self {
            shard,
            node_id,
            config,
            log,
            writer,
            fence,
            state: Mutex::new(state),
            stable: Mutex::new(stable),
            view,
            role_changed: Notify::new(),
            peers,
            metrics,
            campaigning: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists epoch and vote of `st`. Called with the state lock held, so no other
    /// decision can interleave; a few small synced writes, only on elections.
    fn persist(&self, st: &ReplicaState) -> Result<()> {
        let mut stable = self.stable.lock().unwrap_or_else(|p| p.into_inner());
        stable.set(VoteRecord {
            epoch: st.epoch,
            voted_for: st.voted_for,
        })?;
        Ok(())
    }

    /// Publishes `st` to watchers; wakes the driver when role, epoch or leader changed.
    /// Also closes the write fence when this replica no longer leads.
    fn publish(&self, st: &ReplicaState) {
        if !st.is_leader() {
            self.fence.store(0, Ordering::Release);
        }
        let next = ShardView {
            role: st.role,
            epoch: st.epoch,
            leader: st.leader,
            hw: st.hw,
        };
        let mut role_change = false;
        self.view.send_if_modified(|v| {
            if *v == next {
                return false;
            }
            role_change = v.role != next.role || v.epoch != next.epoch || v.leader != next.leader;
            *v = next;
            true
        });
        if role_change {
            self.role_changed.notify_one();
        }
    }

    pub fn shard(&self) -> &str {
        &self.shard
    }

    pub fn view(&self) -> ShardView {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every change of the view (commits included).
    pub fn subscribe(&self) -> watch::Receiver<ShardView> {
        self.view.subscribe()
    }

    /// The replicas, in preference order.
    pub fn replicas(&self) -> Vec<NodeId> {
        self.lock().replicas.clone()
    }

    /// The address of a node, for leader hints.
    pub fn node_addr(&self, id: NodeId) -> String {
        self.peers.addr(id).unwrap_or_default().to_owned()
    }

    /// Replica states as this node knows them (in-sync flags only on the leader).
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        let st = self.lock();
        let leader_end = self.writer.durable_end();
        st.replicas
            .iter()
            .map(|&id| {
                let (in_sync, log_end) = match &st.leader_state {
                    _ if id == self.node_id => (st.is_leader(), Some(leader_end)),
                    Some(ls) => (
                        ls.isr.contains(&id),
                        ls.followers.get(&id).and_then(|p| p.end),
                    ),
                    None => (false, None),
                };
                ReplicaStatus {
                    node_id: id,
                    in_sync,
                    log_end,
                }
            })
            .collect()
    }

    /// For metrics: whether this replica leads, is under-replicated (ISR smaller than
    /// the replica set), and each follower's lag in records.
    pub fn health(&self) -> (bool, bool, Vec<(NodeId, u64)>) {
        let st = self.lock();
        if !st.is_leader() {
            return (false, false, Vec::new());
        }
        let under = st.in_sync_count() < st.replicas.len();
        (true, under, st.lags(self.writer.durable_end()))
    }

    fn not_leader(&self, st: &ReplicaState) -> JournalError {
        let leader_id = st.leader.filter(|l| *l != self.node_id).unwrap_or(0);
        JournalError::NotLeader {
            shard: self.shard.clone(),
            leader_id,
            leader_addr: self.node_addr(leader_id),
        }
    }

    /// Appends as leader and waits until the in-sync replicas have the records.
    /// Answers `(base_offset, next_offset)`.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<(u64, u64)> {
        let epoch = {
            let st = self.lock();
            if !st.is_leader() {
                return Err(self.not_leader(&st));
            }
            if st.in_sync_count() < st.min_insync {
                return Err(JournalError::NotEnoughReplicas {
                    shard: self.shard.clone(),
                    in_sync: st.in_sync_count(),
                    required: st.min_insync,
                });
            }
            st.epoch
        };
        let (base, next) = self.writer.append(epoch, records).await?;
        {
            let mut st = self.lock();
            if st.epoch == epoch && st.is_leader() && st.advance_hw(self.writer.durable_end()) {
                self.publish(&st);
            }
        }
        self.wait_committed(epoch, next).await?;
        Ok((base, next))
    }

    /// Waits until the HW reaches `next` in `epoch`, for at most the ack timeout.
    async fn wait_committed(&self, epoch: u64, next: u64) -> Result<()> {
        let mut rx = self.view.subscribe();
        let wait = async {
            loop {
                {
                    let v = rx.borrow_and_update();
                    if v.epoch != epoch || v.role != Role::Leader {
                        return Err(JournalError::Unavailable(format!(
                            "leadership of shard {:?} changed while the append waited for its replicas; its outcome is unknown",
                            self.shard
                        )));
                    }
                    if v.hw >= next {
                        return Ok(());
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(JournalError::ShuttingDown);
                }
            }
        };
        match tokio::time::timeout(self.config.ack_timeout(), wait).await {
            Ok(result) => result,
            Err(_) => Err(JournalError::Unavailable(format!(
                "the in-sync replicas of shard {:?} did not acknowledge within {:?}; the append's outcome is unknown",
                self.shard,
                self.config.ack_timeout()
            ))),
        }
    }

    /// Election timeout of this replica: the base timeout plus half of it per rank, so
    /// the preferred replica (rank 0) campaigns first and the others rarely collide.
    fn election_timeout(&self, st: &ReplicaState) -> Duration {
        let base = self.config.election_timeout();
        base + base / 2 * st.rank() as u32
    }

    /// When this replica should campaign, if nothing is heard from a leader before.
    fn election_deadline(&self) -> Option<Instant> {
        let st = self.lock();
        match st.role {
            Role::Leader => None,
            _ if st.replicas.len() == 1 => Some(st.last_leader_contact),
            _ => Some(st.last_leader_contact + self.election_timeout(&st)),
        }
    }

    /// A replica with no peers leads at once (no timeout to wait for): called when the
    /// shard opens, so a standalone shard serves appends as soon as it is listed.
    pub async fn elect_if_alone(&self) -> Result<()> {
        if self.lock().replicas == [self.node_id] {
            self.campaign().await?;
        }
        Ok(())
    }

    /// Whether the shard is being served: a leader is known (used for readiness).
    pub fn has_leader(&self) -> bool {
        self.view.borrow().leader.is_some()
    }

    /// Steps down (shutdown): new appends are refused at once.
    pub fn resign(&self) {
        let mut st = self.lock();
        if st.is_leader() {
            st.step_down(Instant::now());
            self.publish(&st);
        }
    }
}
