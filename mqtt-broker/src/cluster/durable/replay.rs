//! Replaying a session log: the records of one broker's shard, folded into the state
//! each of its persistent sessions had when the broker stopped writing.
//!
//! `Opened` sets a session's subscriptions and expiry, `Enqueued` adds a delivery to
//! each target session, `Done` removes deliveries, `Ended` forgets the session. What is
//! left for a client is what it had not acknowledged: its queue, in log order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use robustmq_proto::broker as pb;

use super::DurableId;

/// The folded state of one shard, up to `next_offset`.
#[derive(Debug, Default)]
pub struct Replay {
    /// Where the next read of the shard starts.
    pub next_offset: i64,
    sessions: HashMap<String, Recovering>,
}

#[derive(Debug, Default)]
struct Recovering {
    opened: Option<pb::SessionOpened>,
    /// Deliveries in log order: (offset, target index) → delivery.
    queue: BTreeMap<(i64, u32), Queued>,
    index: HashMap<DurableId, (i64, u32)>,
}

#[derive(Debug)]
struct Queued {
    message: Arc<pb::ForwardedMessage>,
    target: pb::SessionTarget,
    /// When the record was written (Unix ms): a message expiry counts from then.
    written_ms: i64,
}

impl Replay {
    /// Folds one record, read at `offset` with the journal timestamp `written_ms`.
    pub fn apply(&mut self, offset: i64, written_ms: i64, record: pb::SessionLogRecord) {
        use pb::session_log_record::Kind;
        self.next_offset = self.next_offset.max(offset + 1);
        match record.kind {
            Some(Kind::Opened(opened)) => {
                let client = opened.client_id.clone();
                self.sessions.entry(client).or_default().opened = Some(opened);
            }
            Some(Kind::Enqueued(e)) => {
                let Some(message) = e.message else { return };
                let message = Arc::new(message);
                let id = DurableId {
                    epoch: e.epoch,
                    id: e.id,
                };
                for (i, target) in e.targets.into_iter().enumerate() {
                    let key = (offset, i as u32);
                    let session = self.sessions.entry(target.client_id.clone()).or_default();
                    session.index.insert(id, key);
                    session.queue.insert(
                        key,
                        Queued {
                            message: message.clone(),
                            target,
                            written_ms,
                        },
                    );
                }
            }
            Some(Kind::Done(done)) => {
                if let Some(session) = self.sessions.get_mut(&done.client_id) {
                    for id in done.ids {
                        let id = DurableId {
                            epoch: done.epoch,
                            id,
                        };
                        if let Some(key) = session.index.remove(&id) {
                            session.queue.remove(&key);
                        }
                    }
                }
            }
            Some(Kind::Ended(ended)) => {
                self.sessions.remove(&ended.client_id);
            }
            None => {}
        }
    }

    /// The recovered state of `client_id` (`None`: the log holds no session for it),
    /// without messages whose expiry passed by `now_ms`.
    pub fn session(&self, client_id: &str, now_ms: i64) -> Option<pb::SessionState> {
        let session = self.sessions.get(client_id)?;
        let opened = session.opened.clone().unwrap_or_default();
        let queue = session
            .queue
            .values()
            .filter_map(|q| {
                let mut message = pb::ForwardedMessage::clone(&q.message);
                if let Some(remaining) = message.expiry_remaining_ms {
                    let elapsed = u64::try_from(now_ms - q.written_ms).unwrap_or(0);
                    message.expiry_remaining_ms =
                        Some(remaining.checked_sub(elapsed)?).filter(|&r| r > 0);
                    message.expiry_remaining_ms?;
                }
                Some(pb::QueuedDelivery {
                    message: Some(message),
                    qos: q.target.qos,
                    retain: q.target.retain,
                    subscription_ids: q.target.subscription_ids.clone(),
                })
            })
            .collect();
        Some(pb::SessionState {
            subscriptions: opened.subscriptions,
            queue,
            inflight: Vec::new(),
            incoming_qos2: Vec::new(),
            expiry_interval: opened.expiry_interval,
            will: opened.will,
        })
    }

    /// Forgets `client_id`'s session (it was recovered elsewhere).
    pub fn forget(&mut self, client_id: &str) {
        self.sessions.remove(client_id);
    }

    /// Sessions the log holds.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::session_log_record::Kind;

    fn opened(client: &str, filter: &str) -> pb::SessionLogRecord {
        pb::SessionLogRecord {
            kind: Some(Kind::Opened(pb::SessionOpened {
                client_id: client.into(),
                subscriptions: vec![pb::SessionSubscription {
                    key: filter.into(),
                    filter: filter.into(),
                    qos: 1,
                    ..Default::default()
                }],
                expiry_interval: 300,
                will: None,
            })),
        }
    }

    fn enqueued(id: u64, payload: &'static str, clients: &[&str]) -> pb::SessionLogRecord {
        pb::SessionLogRecord {
            kind: Some(Kind::Enqueued(Box::new(pb::SessionEnqueued {
                epoch: 7,
                id,
                message: Some(pb::ForwardedMessage {
                    topic: "t".into(),
                    payload: payload.into(),
                    qos: 1,
                    ..Default::default()
                }),
                targets: clients
                    .iter()
                    .map(|c| pb::SessionTarget {
                        client_id: (*c).into(),
                        qos: 1,
                        ..Default::default()
                    })
                    .collect(),
            }))),
        }
    }

    fn done(client: &str, ids: &[u64]) -> pb::SessionLogRecord {
        pb::SessionLogRecord {
            kind: Some(Kind::Done(pb::SessionDone {
                client_id: client.into(),
                epoch: 7,
                ids: ids.to_vec(),
            })),
        }
    }

    fn ended(client: &str) -> pb::SessionLogRecord {
        pb::SessionLogRecord {
            kind: Some(Kind::Ended(pb::SessionEnded {
                client_id: client.into(),
            })),
        }
    }

    fn payloads(state: &pb::SessionState) -> Vec<String> {
        state
            .queue
            .iter()
            .map(|d| String::from_utf8_lossy(&d.message.as_ref().unwrap().payload).into_owned())
            .collect()
    }

    #[test]
    fn unacknowledged_deliveries_survive_in_order() {
        let mut replay = Replay::default();
        let records = [
            opened("a", "t/#"),
            opened("b", "t/#"),
            enqueued(1, "one", &["a", "b"]),
            enqueued(2, "two", &["a"]),
            done("a", &[1]),
            enqueued(3, "three", &["a", "b"]),
            done("b", &[1, 3]),
        ];
        for (offset, r) in records.into_iter().enumerate() {
            replay.apply(offset as i64, 0, r);
        }
        assert_eq!(replay.next_offset, 7);
        let a = replay.session("a", 0).unwrap();
        assert_eq!(payloads(&a), ["two", "three"]);
        assert_eq!(a.subscriptions[0].filter, "t/#");
        assert_eq!(a.expiry_interval, 300);
        let b = replay.session("b", 0).unwrap();
        assert!(b.queue.is_empty());
        replay.forget("a");
        assert!(replay.session("a", 0).is_none(), "forgotten once recovered");
    }

    #[test]
    fn an_ended_session_is_forgotten_and_may_start_again() {
        let mut replay = Replay::default();
        replay.apply(0, 0, opened("a", "x"));
        replay.apply(1, 0, enqueued(1, "old", &["a"]));
        replay.apply(2, 0, ended("a"));
        assert!(replay.is_empty());
        replay.apply(3, 0, opened("a", "y"));
        replay.apply(4, 0, enqueued(2, "new", &["a"]));
        let a = replay.session("a", 0).unwrap();
        assert_eq!(payloads(&a), ["new"]);
        assert_eq!(a.subscriptions[0].filter, "y");
    }

    #[test]
    fn expiry_counts_from_when_the_record_was_written() {
        let mut replay = Replay::default();
        let mut short = enqueued(1, "short", &["a"]);
        let mut long = enqueued(2, "long", &["a"]);
        for (r, ms) in [(&mut short, 1_000), (&mut long, 60_000)] {
            if let Some(Kind::Enqueued(e)) = &mut r.kind {
                e.message.as_mut().unwrap().expiry_remaining_ms = Some(ms);
            }
        }
        replay.apply(0, 10_000, short);
        replay.apply(1, 10_000, long);
        let a = replay.session("a", 15_000).unwrap();
        assert_eq!(payloads(&a), ["long"]);
        assert_eq!(
            a.queue[0].message.as_ref().unwrap().expiry_remaining_ms,
            Some(55_000)
        );
    }
}
