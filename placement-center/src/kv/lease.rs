//! The lease clock: when each lease expires, by this node's clock.
//!
//! Every replica tracks the leases it applied, but only the leader acts on the deadlines:
//! its expiry loop proposes `LeaseRevoke` through Raft, so all replicas delete the same
//! keys at the same revision. Keep-alives reach the leader only (followers forward them);
//! a new leader restarts every deadline at a full TTL, as etcd does, so a leader change
//! never expires a lease that was being kept alive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kv::apply::LeaseChange;

#[derive(Debug, Clone, Copy)]
struct LeaseState {
    ttl: i64,
    deadline: Instant,
}

/// Lease deadlines of this node.
#[derive(Debug, Default)]
pub struct LeaseClock {
    leases: Mutex<HashMap<i64, LeaseState>>,
}

impl LeaseClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows the leases granted and revoked by applied commands.
    pub fn apply(&self, changes: &[LeaseChange]) {
        let now = Instant::now();
        let mut leases = self.lock();
        for c in changes {
            match *c {
                LeaseChange::Granted { id, ttl } => {
                    leases.insert(
                        id,
                        LeaseState {
                            ttl,
                            deadline: now + secs(ttl),
                        },
                    );
                }
                LeaseChange::Revoked { id } => {
                    leases.remove(&id);
                }
            }
        }
    }

    /// Replaces every lease (after loading or installing a snapshot), deadlines at full TTL.
    pub fn reset(&self, leases: impl IntoIterator<Item = (i64, i64)>) {
        let now = Instant::now();
        *self.lock() = leases
            .into_iter()
            .map(|(id, ttl)| {
                (
                    id,
                    LeaseState {
                        ttl,
                        deadline: now + secs(ttl),
                    },
                )
            })
            .collect();
    }

    /// Restarts every deadline at a full TTL (this node just became leader).
    pub fn refresh_all(&self) {
        let now = Instant::now();
        for s in self.lock().values_mut() {
            s.deadline = now + secs(s.ttl);
        }
    }

    /// Renews a lease; its TTL, or `None` if it does not exist.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let mut leases = self.lock();
        let s = leases.get_mut(&id)?;
        s.deadline = Instant::now() + secs(s.ttl);
        Some(s.ttl)
    }

    /// (granted TTL, seconds left) of a lease.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let leases = self.lock();
        let s = leases.get(&id)?;
        let left = s.deadline.saturating_duration_since(Instant::now());
        Some((s.ttl, left.as_secs_f64().ceil() as i64))
    }

    /// Leases whose deadline passed at `now`.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LeaseState>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_grants_keepalives_and_revokes() {
        let clock = LeaseClock::new();
        clock.apply(&[
            LeaseChange::Granted { id: 1, ttl: 5 },
            LeaseChange::Granted { id: 2, ttl: 1 },
        ]);
        let now = Instant::now();
        assert!(clock.expired(now).is_empty());
        assert_eq!(clock.expired(now + Duration::from_secs(2)), vec![2]);
        assert_eq!(clock.expired(now + Duration::from_secs(6)), vec![1, 2]);
        assert_eq!(clock.keep_alive(2), Some(1));
        assert_eq!(clock.keep_alive(3), None);
        clock.apply(&[LeaseChange::Revoked { id: 2 }]);
        assert_eq!(clock.expired(now + Duration::from_secs(6)), vec![1]);
        assert_eq!(clock.time_to_live(1).map(|(ttl, _)| ttl), Some(5));
    }
}
