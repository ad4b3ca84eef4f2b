//! The replication state of one shard replica, as plain data and rules: role, epoch,
//! leader, high watermark, and on the leader the followers' progress and the ISR.
//! No I/O and no clock of its own (`now` is a parameter), so the rules are unit-tested
//! directly; `replication::Replica` wraps it in a mutex and does the I/O.
//!
//! The rules, in one place:
//! * **Commit (high watermark)**: the leader advances the HW to the smallest log end
//!   among itself and its in-sync followers, and only while the ISR (leader included)
//!   has at least `min_insync` members. `min_insync` is never below a majority of the
//!   replicas, so every committed record is on a majority.
//! * **Matched follower**: a follower counts only once it has recorded the leader's
//!   epoch start (its last epoch equals the leader's epoch), i.e. it truncated any
//!   divergent tail and holds the leader's log up to where it reports.
//! * **ISR**: a matched follower whose log end reaches the HW joins; a follower that has
//!   not caught up with the leader's log end for `replica_lag_max` leaves.
//! * **Votes**: granted to a candidate whose log (last epoch, end offset) is at least as
//!   up to date, at most once per epoch, and not while the voter hears from a live
//!   leader. With a majority of votes and commits on a majority, the new leader holds
//!   every committed record (Raft's election safety, with epochs as terms).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::config::NodeId;

/// A replica's role in its current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// What the leader knows about one follower.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The follower's durable log end, from its last fetch; `None` before any fetch in
    /// this epoch.
    pub end: Option<u64>,
    /// The follower's last epoch, from its last fetch.
    pub last_epoch: u64,
    /// When its last fetch arrived (liveness, for the quorum check).
    pub last_fetch: Instant,
    /// When it last fetched at or past the leader's log end (ISR membership).
    pub last_caught_up: Instant,
    /// When the leader last announced itself to it (announcements are rate-limited).
    pub last_announced: Instant,
}

/// Leader-only state.
#[derive(Debug, Clone)]
pub struct LeaderState {
    /// First offset of this leader's epoch.
    pub epoch_start: u64,
    pub followers: BTreeMap<NodeId, Progress>,
    /// In-sync followers; the leader itself is always in sync and not listed.
    pub isr: BTreeSet<NodeId>,
}

/// A candidate's log position, as sent in a vote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub last_epoch: u64,
    pub end_offset: u64,
}

/// The replication state of one replica.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub node_id: NodeId,
    /// Every replica of the shard, in preference order (this node included).
    pub replicas: Vec<NodeId>,
    /// ISR size (leader included) an append needs; at least a majority.
    pub min_insync: usize,
    pub role: Role,
    /// Highest epoch seen (persisted with `voted_for`).
    pub epoch: u64,
    /// Vote in `epoch`, 0: none (persisted).
    pub voted_for: NodeId,
    /// The leader of `epoch`, when known.
    pub leader: Option<NodeId>,
    /// Committed end offset (exclusive) as far as this replica knows.
    pub hw: u64,
    /// Last sign of life from the leader (fetch answer, announcement), or when this
    /// replica last stepped down: the election clock.
    pub last_leader_contact: Instant,
    pub leader_state: Option<LeaderState>,
}

impl ReplicaState {
    pub fn new(
        node_id: NodeId,
        replicas: Vec<NodeId>,
        min_insync: usize,
        epoch: u64,
        voted_for: NodeId,
        now: Instant,
    ) -> Self {
        Self {
            node_id,
            replicas,
            min_insync,
            role: Role::Follower,
            epoch,
            voted_for,
            leader: None,
            hw: 0,
            last_leader_contact: now,
            leader_state: None,
        }
    }

    /// Votes needed to win, and replicas that must hold a record to commit it.
    pub fn majority(&self) -> usize {
        self.replicas.len() / 2 + 1
    }

    /// The other replicas.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.replicas
            .iter()
            .copied()
            .filter(move |id| *id != self.node_id)
    }

    /// Position of this node in the replica list (election preference).
    pub fn rank(&self) -> usize {
        self.replicas
            .iter()
            .position(|id| *id == self.node_id)
            .unwrap_or(self.replicas.len())
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// In-sync replicas, the leader included (1 on a follower: itself).
    pub fn in_sync_count(&self) -> usize {
        self.leader_state.as_ref().map_or(1, |l| l.isr.len() + 1)
    }

    /// Moves to a newer epoch as a follower (vote cleared). Returns whether it changed.
    pub fn observe_epoch(&mut self, epoch: u64, now: Instant) -> bool {
        if epoch <= self.epoch {
            return false;
        }
        self.epoch = epoch;
        self.voted_for = 0;
        self.step_down(now);
        true
    }

    /// Becomes a follower with no known leader; the election clock restarts.
    pub fn step_down(&mut self, now: Instant) {
        self.role = Role::Follower;
        self.leader = None;
        self.leader_state = None;
        self.last_leader_contact = now;
    }

    /// Accepts `leader` as the leader of the current epoch.
    pub fn follow(&mut self, leader: NodeId, now: Instant) {
        if leader == self.node_id {
            return;
        }
        if self.role != Role::Follower {
            self.step_down(now);
        }
        self.leader = Some(leader);
        self.last_leader_contact = now;
    }

    /// Becomes leader of the current epoch whose first offset is `epoch_start`. Every
    /// follower gets a grace period before counting as lagging or dead.
    pub fn become_leader(&mut self, epoch_start: u64, leader_end: u64, now: Instant) {
        let followers = self
            .peers()
            .map(|id| {
                let progress = Progress {
                    end: None,
                    last_epoch: 0,
                    last_fetch: now,
                    last_caught_up: now,
                    last_announced: now,
                };
                (id, progress)
            })
            .collect();
        self.role = Role::Leader;
        self.leader = Some(self.node_id);
        self.leader_state = Some(LeaderState {
            epoch_start,
            followers,
            isr: BTreeSet::new(),
        });
        self.advance_hw(leader_end);
    }

    /// Records a follower's fetch at `fetch_offset` with `last_epoch` (already checked
    /// for divergence) while the leader's durable end is `leader_end`. Returns whether
    /// the HW moved.
    pub fn on_follower_fetch(
        &mut self,
        follower: NodeId,
        fetch_offset: u64,
        last_epoch: u64,
        leader_end: u64,
        now: Instant,
    ) -> bool {
        let epoch = self.epoch;
        let hw = self.hw;
        let Some(ls) = self.leader_state.as_mut() else {
            return false;
        };
        let Some(p) = ls.followers.get_mut(&follower) else {
            return false;
        };
        p.end = Some(fetch_offset);
        p.last_epoch = last_epoch;
        p.last_fetch = now;
        if fetch_offset >= leader_end {
            p.last_caught_up = now;
        }
        let matched = last_epoch == epoch;
        if !matched {
            ls.isr.remove(&follower);
        } else if fetch_offset >= hw && fetch_offset >= ls.epoch_start {
            ls.isr.insert(follower);
        }
        self.advance_hw(leader_end)
    }

    /// Recomputes the HW from the ISR; it never moves back. Returns whether it moved.
    pub fn advance_hw(&mut self, leader_end: u64) -> bool {
        let Some(ls) = self.leader_state.as_ref() else {
            return false;
        };
        if ls.isr.len() + 1 < self.min_insync {
            return false;
        }
        let candidate = ls
            .isr
            .iter()
            .filter_map(|id| ls.followers.get(id).and_then(|p| p.end))
            .fold(leader_end, u64::min);
        if candidate > self.hw {
            self.hw = candidate;
            true
        } else {
            false
        }
    }

    /// Drops followers that have not caught up for `lag_max`; returns them. The HW may
    /// advance afterwards (fewer members to wait for), which the caller checks.
    pub fn shrink_isr(&mut self, now: Instant, lag_max: Duration) -> Vec<NodeId> {
        let Some(ls) = self.leader_state.as_mut() else {
            return Vec::new();
        };
        let lagging: Vec<NodeId> = ls
            .isr
            .iter()
            .copied()
            .filter(|id| {
                ls.followers
                    .get(id)
                    .is_none_or(|p| now.duration_since(p.last_caught_up) > lag_max)
            })
            .collect();
        for id in &lagging {
            ls.isr.remove(id);
        }
        lagging
    }

    /// Whether a majority (leader included) fetched within `window`: a leader without
    /// one steps down rather than serve stale reads for ever.
    pub fn has_quorum(&self, now: Instant, window: Duration) -> bool {
        let Some(ls) = self.leader_state.as_ref() else {
            return false;
        };
        let live = ls
            .followers
            .values()
            .filter(|p| now.duration_since(p.last_fetch) <= window)
            .count();
        live + 1 >= self.majority()
    }

    /// Whether this replica would vote for `candidate` at `position` in `epoch`, before
    /// the once-per-epoch bookkeeping: not while it follows a live leader or leads with a
    /// quorum, and only if the candidate's log is at least as up to date as `mine`.
    pub fn would_vote(
        &self,
        candidate: NodeId,
        epoch: u64,
        position: LogPosition,
        mine: LogPosition,
        now: Instant,
        election_timeout: Duration,
    ) -> bool {
        if epoch < self.epoch || !self.replicas.contains(&candidate) {
            return false;
        }
        let leader_alive = match self.role {
            Role::Leader => self.has_quorum(now, election_timeout),
            Role::Follower => {
                self.leader.is_some_and(|l| l != candidate)
                    && now.duration_since(self.last_leader_contact) < election_timeout
            }
            Role::Candidate => false,
        };
        !leader_alive && position >= mine
    }

    /// Follower lag (leader's end minus the follower's), per follower; `None` ends
    /// count as the whole log.
    pub fn lags(&self, leader_end: u64) -> Vec<(NodeId, u64)> {
        self.leader_state.as_ref().map_or_else(Vec::new, |ls| {
            ls.followers
                .iter()
                .map(|(id, p)| (*id, leader_end.saturating_sub(p.end.unwrap_or(0))))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(now: Instant) -> ReplicaState {
        let mut s = ReplicaState::new(1, vec![1, 2, 3], 2, 5, 1, now);
        s.hw = 10;
        s.become_leader(12, 12, now);
        s
    }

    #[test]
    fn hw_waits_for_min_insync_then_for_every_isr_member() {
        let now = Instant::now();
        let mut s = leader(now);
        assert_eq!(s.hw, 10, "alone, the ISR is below min_insync");
        assert!(!s.advance_hw(20));
        // Follower 2 has not recorded the epoch start yet: not matched.
        assert!(!s.on_follower_fetch(2, 12, 4, 20, now));
        assert_eq!(s.in_sync_count(), 1);
        // Matched at 15: joins, HW = min(20, 15).
        assert!(s.on_follower_fetch(2, 15, 5, 20, now));
        assert_eq!(s.hw, 15);
        // Follower 3 matched at 16 >= HW joins; HW now waits for both.
        s.on_follower_fetch(3, 16, 5, 20, now);
        assert_eq!(s.in_sync_count(), 3);
        s.on_follower_fetch(3, 20, 5, 20, now);
        assert_eq!(s.hw, 15, "still waiting for follower 2");
        s.on_follower_fetch(2, 20, 5, 20, now);
        assert_eq!(s.hw, 20);
    }

    #[test]
    fn lagging_follower_leaves_isr_and_hw_moves_on() {
        let t0 = Instant::now();
        let mut s = leader(t0);
        s.on_follower_fetch(2, 12, 5, 12, t0);
        s.on_follower_fetch(3, 12, 5, 12, t0);
        assert_eq!(s.hw, 12);
        // Leader writes to 30; follower 2 keeps up, follower 3 stops fetching.
        let t1 = t0 + Duration::from_secs(1);
        s.on_follower_fetch(2, 30, 5, 30, t1);
        assert_eq!(s.hw, 12, "follower 3 is in sync at 12");
        let t2 = t0 + Duration::from_secs(3);
        s.on_follower_fetch(2, 30, 5, 30, t2);
        assert_eq!(s.shrink_isr(t2, Duration::from_secs(2)), vec![3]);
        assert!(s.advance_hw(30));
        assert_eq!(s.hw, 30);
        // Follower 2 also goes: below min_insync, nothing commits any more.
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(s.shrink_isr(t3, Duration::from_secs(2)), vec![2]);
        assert!(!s.advance_hw(40));
        assert_eq!(s.hw, 30);
        assert!(!s.has_quorum(t3, Duration::from_secs(1)));
    }

    #[test]
    fn single_replica_commits_alone() {
        let now = Instant::now();
        let mut s = ReplicaState::new(1, vec![1], 1, 1, 1, now);
        s.become_leader(0, 0, now);
        assert!(s.advance_hw(5));
        assert_eq!(s.hw, 5);
        assert!(s.has_quorum(now, Duration::from_millis(1)));
    }

    #[test]
    fn votes() {
        let now = Instant::now();
        let timeout = Duration::from_secs(1);
        let mine = LogPosition {
            last_epoch: 3,
            end_offset: 50,
        };
        let mut s = ReplicaState::new(2, vec![1, 2, 3], 2, 4, 0, now - timeout * 2);
        let behind = LogPosition {
            last_epoch: 3,
            end_offset: 40,
        };
        let older = LogPosition {
            last_epoch: 2,
            end_offset: 90,
        };
        let ahead = LogPosition {
            last_epoch: 4,
            end_offset: 1,
        };
        assert!(s.would_vote(3, 5, mine, mine, now, timeout));
        assert!(s.would_vote(3, 5, ahead, mine, now, timeout));
        assert!(!s.would_vote(3, 5, behind, mine, now, timeout));
        assert!(
            !s.would_vote(3, 5, older, mine, now, timeout),
            "epoch beats length"
        );
        assert!(!s.would_vote(3, 3, mine, mine, now, timeout), "stale epoch");
        assert!(
            !s.would_vote(9, 5, mine, mine, now, timeout),
            "not a replica"
        );
        // Following a live leader: no vote (a rejoining node cannot disrupt it).
        s.follow(1, now);
        assert!(!s.would_vote(3, 5, mine, mine, now, timeout));
        assert!(s.would_vote(3, 5, mine, mine, now + timeout, timeout));
    }

    #[test]
    fn new_epoch_clears_vote_and_leadership() {
        let now = Instant::now();
        let mut s = leader(now);
        assert!(!s.observe_epoch(5, now));
        assert!(s.observe_epoch(6, now));
        assert_eq!((s.role, s.voted_for, s.leader), (Role::Follower, 0, None));
        assert!(s.leader_state.is_none());
    }
}
