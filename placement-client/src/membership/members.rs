//! Following the members of one kind: a linearizable list of the prefix, then a watch from
//! the revision after it, applied to a map published on a `tokio::sync::watch` channel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{decode, id_of, kind_prefix, Member};
use crate::client::PlacementClient;
use crate::error::{Error, Result};
use crate::pb;
use crate::watch::WatchStream;

/// Backoff between attempts to list and watch again after the watch failed.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Highest epoch ever seen per node id, kept after the node's key is gone.
type Highest = Arc<Mutex<BTreeMap<u64, u64>>>;

/// Every registered node of one kind, kept current by a background task; see
/// [`PlacementClient::watch_members`]. Dropping it stops the task.
pub struct Members {
    members: watch::Receiver<BTreeMap<u64, Member>>,
    /// For fencing: a node that left keeps its last epoch here, so a zombie of it is still
    /// recognised as stale when a newer incarnation was seen.
    highest: Highest,
    task: JoinHandle<()>,
}

impl PlacementClient {
    /// Watches every node of `kind`: an initial Range, then a Watch on the prefix from the
    /// revision after it (resumed across member failures by [`WatchStream`]; when the
    /// events needed to resume are gone, the prefix is listed and watched anew).
    pub async fn watch_members(&self, kind: &str) -> Result<Members> {
        let prefix = kind_prefix(kind);
        let (listed, stream) = list_and_watch(self, &prefix).await?;
        let highest = Highest::default();
        record_highest(&highest, &listed);
        let (tx, members) = watch::channel(listed);
        let task = tokio::spawn(follow(self.clone(), prefix, stream, tx, highest.clone()));
        Ok(Members {
            members,
            highest,
            task,
        })
    }
}

impl Members {
    /// The members now, by node id.
    pub fn current(&self) -> BTreeMap<u64, Member> {
        self.members.borrow().clone()
    }

    /// A receiver that changes whenever a member joins, leaves or registers again.
    pub fn changes(&self) -> watch::Receiver<BTreeMap<u64, Member>> {
        self.members.clone()
    }

    /// The highest epoch seen for node `id`, even if the node has left since.
    pub fn latest_epoch(&self, id: u64) -> Option<u64> {
        lock(&self.highest).get(&id).copied()
    }

    /// Whether a request from node `id` carrying `epoch` comes from an older incarnation
    /// than one already seen (and must be rejected).
    pub fn is_stale(&self, id: u64, epoch: u64) -> bool {
        self.latest_epoch(id).is_some_and(|latest| epoch < latest)
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(highest: &Highest) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
    highest.lock().unwrap_or_else(|e| e.into_inner())
}

fn record_highest(highest: &Highest, members: &BTreeMap<u64, Member>) {
    let mut h = lock(highest);
    for (id, m) in members {
        let e = h.entry(*id).or_default();
        *e = (*e).max(m.epoch);
    }
}

/// The members under `prefix` now, and a watch of the changes after that read.
async fn list_and_watch(
    client: &PlacementClient,
    prefix: &str,
) -> Result<(BTreeMap<u64, Member>, WatchStream)> {
    let listed = client.range(prefix, 0).await?;
    let revision = listed.header.as_ref().map_or(0, |h| h.revision);
    let members = listed
        .kvs
        .iter()
        .filter_map(|kv| decode(prefix, kv))
        .collect();
    let stream = client.watch(prefix, true, revision + 1).await?;
    Ok((members, stream))
}

/// Applies watch events to `members` (and every epoch put to `highest`, even one deleted
/// again in the same batch); whether the members changed.
fn apply_events(
    prefix: &str,
    members: &mut BTreeMap<u64, Member>,
    events: &[pb::Event],
    highest: &Highest,
) -> bool {
    let mut changed = false;
    for event in events {
        let Some(kv) = &event.kv else { continue };
        if event.r#type == pb::event::EventType::Delete as i32 {
            if let Some(id) = id_of(prefix, &kv.key) {
                changed |= members.remove(&id).is_some();
            }
        } else if let Some((id, member)) = decode(prefix, kv) {
            let mut h = lock(highest);
            let e = h.entry(id).or_default();
            *e = (*e).max(member.epoch);
            drop(h);
            changed |= members.insert(id, member.clone()).as_ref() != Some(&member);
        }
    }
    changed
}

/// Applies the watch to the published map until dropped; on a watch failure, lists and
/// watches again (with backoff while the placement center is unreachable).
async fn follow(
    client: PlacementClient,
    prefix: String,
    mut stream: WatchStream,
    tx: watch::Sender<BTreeMap<u64, Member>>,
    highest: Highest,
) {
    loop {
        match stream.next().await {
            Ok(resp) => {
                tx.send_if_modified(|members| {
                    apply_events(&prefix, members, &resp.events, &highest)
                });
            }
            Err(e) => {
                if matches!(e, Error::Compacted(_)) {
                    tracing::info!(%prefix, "member watch compacted; listing again");
                } else {
                    tracing::warn!(%prefix, error = %e, "member watch failed; listing again");
                }
                let mut backoff = RETRY_MIN;
                stream = loop {
                    match list_and_watch(&client, &prefix).await {
                        Ok((listed, s)) => {
                            record_highest(&highest, &listed);
                            tx.send_if_modified(|members| {
                                let changed = *members != listed;
                                *members = listed;
                                changed
                            });
                            break s;
                        }
                        Err(e) => {
                            tracing::warn!(%prefix, error = %e, retry_in = ?backoff, "listing members failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(RETRY_MAX);
                        }
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{node_key, NodeInfo};

    fn put(id: u64, epoch: i64) -> pb::Event {
        let info = NodeInfo {
            kind: "journal".into(),
            id,
            grpc: format!("127.0.0.1:{id}"),
            metrics: None,
            mqtt: None,
            version: "v".into(),
        };
        pb::Event {
            r#type: pb::event::EventType::Put as i32,
            kv: Some(pb::KeyValue {
                key: node_key("journal", id).into_bytes(),
                value: serde_json::to_vec(&info).unwrap(),
                create_revision: epoch,
                mod_revision: epoch,
                version: 1,
                lease: 1,
            }),
        }
    }

    fn delete(id: u64, rev: i64) -> pb::Event {
        pb::Event {
            r#type: pb::event::EventType::Delete as i32,
            kv: Some(pb::KeyValue {
                key: node_key("journal", id).into_bytes(),
                mod_revision: rev,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn events_join_replace_and_remove_members() {
        let prefix = kind_prefix("journal");
        let h = Highest::default();
        let mut m = BTreeMap::new();
        assert!(apply_events(&prefix, &mut m, &[put(1, 5), put(2, 6)], &h));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert!(
            !apply_events(&prefix, &mut m, &[put(1, 5)], &h),
            "same member again"
        );
        // A takeover: delete and put of one revision, in one response.
        assert!(apply_events(
            &prefix,
            &mut m,
            &[delete(1, 9), put(1, 9)],
            &h
        ));
        assert_eq!(m[&1].epoch, 9);
        assert!(apply_events(&prefix, &mut m, &[delete(2, 10)], &h));
        assert!(!apply_events(&prefix, &mut m, &[delete(3, 11)], &h));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_highest_epoch_outlives_the_member() {
        let highest = Highest::default();
        let prefix = kind_prefix("journal");
        let mut m = BTreeMap::new();
        // Joined and left within one batch: still remembered.
        apply_events(&prefix, &mut m, &[put(1, 9), delete(1, 10)], &highest);
        assert!(m.is_empty());
        assert_eq!(lock(&highest).get(&1), Some(&9));
        apply_events(&prefix, &mut m, &[put(1, 3)], &highest); // never happens; must not lower it
        assert_eq!(lock(&highest).get(&1), Some(&9));
        record_highest(&highest, &m);
        assert_eq!(lock(&highest).get(&1), Some(&9));
    }
}
