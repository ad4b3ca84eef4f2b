//! Watch events: a bounded per-node history for resuming watchers, and a broadcast of
//! new events to live watchers.
//!
//! Every replica applies the same commands, so every replica produces the same events at
//! the same revisions: a watcher can resume on any node from the revision after the last
//! one it saw, as long as that node still keeps it. What a node does not keep (older than
//! its history, or from before it started or installed a snapshot) is reported as
//! [`Error::Compacted`] rather than silently skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::kv::command::KeyValue;

/// Put or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change; `kv.mod_revision` is its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// What live watchers receive.
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// The events of one apply call, in revision order.
    Events(Arc<Vec<Event>>),
    /// The history was replaced (snapshot installed): watchers must resume.
    Reset { oldest: i64 },
}

/// Which keys a watcher wants.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    pub key: Vec<u8>,
    pub prefix: bool,
}

impl KeyFilter {
    pub fn matches(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key.as_slice()
        }
    }
}

/// The event history of this node and the broadcast of new events.
pub struct WatchHub {
    history: Mutex<History>,
    tx: broadcast::Sender<HubMessage>,
}

struct History {
    events: VecDeque<Event>,
    capacity: usize,
    /// Events of revisions up to and including this one are not kept.
    compacted: i64,
    /// The store revision after the last published events.
    current: i64,
}

/// A watcher's starting point: the kept events it must replay first, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Event>,
    pub live: broadcast::Receiver<HubMessage>,
    /// The first revision the watcher wants.
    pub start: i64,
}

impl WatchHub {
    /// A hub that keeps up to `capacity` events; the store is at `revision`.
    pub fn new(capacity: usize, revision: i64) -> Self {
        let (tx, _) = broadcast::channel(1024);
        WatchHub {
            history: Mutex::new(History {
                events: VecDeque::new(),
                capacity,
                compacted: revision,
                current: revision,
            }),
            tx,
        }
    }

    /// Records the events of one apply call and wakes live watchers.
    pub fn publish(&self, events: Vec<Event>, revision: i64) {
        let mut h = lock(&self.history);
        h.current = revision;
        if events.is_empty() {
            return;
        }
        h.events.extend(events.iter().cloned());
        while h.events.len() > h.capacity {
            if let Some(e) = h.events.pop_front() {
                h.compacted = h.compacted.max(e.kv.mod_revision);
            }
        }
        // Drop the rest of a revision that lost some of its events.
        while h
            .events
            .front()
            .is_some_and(|e| e.kv.mod_revision <= h.compacted)
        {
            h.events.pop_front();
        }
        // Sent under the lock, so a subscriber sees each event either in its backlog or live.
        let _ = self.tx.send(HubMessage::Events(Arc::new(events)));
    }

    /// Forgets the history (the data was replaced by a snapshot at `revision`).
    pub fn reset(&self, revision: i64) {
        let mut h = lock(&self.history);
        h.events.clear();
        h.compacted = revision;
        h.current = revision;
        let _ = self.tx.send(HubMessage::Reset {
            oldest: revision + 1,
        });
    }

    /// The revision after the last published events.
    pub fn current_revision(&self) -> i64 {
        lock(&self.history).current
    }

    /// Starts a watch from `start_revision` (0: after the current revision).
    pub fn subscribe(&self, filter: &KeyFilter, start_revision: i64) -> Result<Subscription> {
        if start_revision < 0 {
            return Err(Error::InvalidArgument(format!(
                "start_revision {start_revision} is negative"
            )));
        }
        let h = lock(&self.history);
        let start = if start_revision == 0 {
            h.current + 1
        } else {
            start_revision
        };
        if start <= h.compacted {
            return Err(Error::Compacted {
                requested: start,
                oldest: h.compacted + 1,
            });
        }
        let backlog = h
            .events
            .iter()
            .filter(|e| e.kv.mod_revision >= start && filter.matches(&e.kv.key))
            .cloned()
            .collect();
        Ok(Subscription {
            backlog,
            live: self.tx.subscribe(),
            start,
        })
    }
}

fn lock(m: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    // The history holds no invariant a panicking writer could half-break beyond losing
    // events, which watchers detect by revision; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, rev: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                mod_revision: rev,
                ..Default::default()
            },
        }
    }

    #[test]
    fn backlog_then_live_in_revision_order() {
        let hub = WatchHub::new(100, 0);
        hub.publish(vec![put("a/1", 1)], 1);
        hub.publish(vec![put("b/1", 2), put("a/2", 2)], 2);
        let filter = KeyFilter {
            key: b"a/".to_vec(),
            prefix: true,
        };
        let mut sub = hub.subscribe(&filter, 1).unwrap();
        let revs: Vec<i64> = sub.backlog.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revs, vec![1, 2]);
        hub.publish(vec![put("a/3", 3)], 3);
        match sub.live.try_recv().unwrap() {
            HubMessage::Events(ev) => assert_eq!(ev[0].kv.mod_revision, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compacted_revisions_are_refused() {
        let hub = WatchHub::new(2, 10);
        let filter = KeyFilter {
            key: b"k".to_vec(),
            prefix: false,
        };
        assert!(matches!(
            hub.subscribe(&filter, 10),
            Err(Error::Compacted { oldest: 11, .. })
        ));
        assert!(hub.subscribe(&filter, 11).is_ok());
        for rev in 11..=14 {
            hub.publish(vec![put("k", rev)], rev);
        }
        assert!(matches!(
            hub.subscribe(&filter, 12),
            Err(Error::Compacted { oldest: 13, .. })
        ));
        assert_eq!(hub.subscribe(&filter, 13).unwrap().backlog.len(), 2);
        assert!(matches!(
            hub.subscribe(&filter, -1),
            Err(Error::InvalidArgument(_))
        ));
        // 0 means "from now on".
        assert_eq!(hub.subscribe(&filter, 0).unwrap().start, 15);
        hub.reset(20);
        assert!(matches!(
            hub.subscribe(&filter, 20),
            Err(Error::Compacted { .. })
        ));
    }
}
