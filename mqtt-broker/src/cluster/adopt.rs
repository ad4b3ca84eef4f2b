//! Adopting orphaned sessions: when a broker dies, the persistent sessions it owned
//! would have no subscriptions anywhere until their clients came back, and messages
//! published meanwhile would not be queued for them. So the live broker with the lowest
//! node id adopts every session whose owner is no longer registered (or registered
//! again as a newer incarnation): it claims the owner record, rebuilds the session from
//! the dead owner's session log, journals it in its own, routes its subscriptions and
//! keeps it offline, queueing, until its client reconnects anywhere (then it is handed
//! over as usual) or it expires.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use placement_client::{node_key, Member};
use prost::Message as _;
use robustmq_proto::broker as broker_pb;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::durable::will_from_proto;
use super::{sessions, Cluster, BROKER_KIND};
use crate::broker::Broker;

/// Follows the registered brokers; whenever they change and this node has the lowest
/// live id, adopts the sessions of owners that are gone.
pub async fn run(
    broker: Arc<Broker>,
    mut members: watch::Receiver<BTreeMap<u64, Member>>,
    stop: CancellationToken,
) {
    let Some(cluster) = broker.cluster.clone() else {
        return;
    };
    loop {
        let live = members.borrow_and_update().clone();
        let me = cluster.node_id();
        if live.keys().all(|&id| id >= me) {
            // Retried on failure until the membership changes again.
            let mut backoff = Duration::from_millis(500);
            while let Err(e) = adopt_orphans(&broker, &cluster, &live).await {
                tracing::warn!(error = %e, "adopting orphaned sessions failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if members.has_changed().unwrap_or(true) {
                    break;
                }
            }
        }
        tokio::select! {
            changed = members.changed() => if changed.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass over every session owner record.
async fn adopt_orphans(
    broker: &Arc<Broker>,
    cluster: &Cluster,
    live: &BTreeMap<u64, Member>,
) -> Result<(), String> {
    let records = cluster
        .client
        .range(sessions::SESSIONS_PREFIX, 0)
        .await
        .map_err(|e| e.to_string())?;
    // Per node: is the epoch registered now, as read from the placement center (the
    // member watch may not have caught up with a node that just registered).
    let mut registered: HashMap<u64, Option<u64>> = HashMap::new();
    let mut adopted = 0;
    for kv in records.kvs {
        let Ok(owner) = broker_pb::SessionOwner::decode(&kv.value[..]) else {
            continue;
        };
        if owner.node == cluster.node_id() && owner.epoch == cluster.epoch() {
            continue;
        }
        if live
            .get(&owner.node)
            .is_some_and(|m| m.epoch == owner.epoch)
        {
            continue;
        }
        let current = match registered.get(&owner.node) {
            Some(epoch) => *epoch,
            None => {
                let epoch = cluster
                    .client
                    .get(node_key(BROKER_KIND, owner.node))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|kv| kv.create_revision as u64);
                registered.insert(owner.node, epoch);
                epoch
            }
        };
        if current == Some(owner.epoch) {
            continue;
        }
        let Some(client_id) = kv
            .key
            .strip_prefix(sessions::SESSIONS_PREFIX.as_bytes())
            .and_then(|id| std::str::from_utf8(id).ok())
        else {
            continue;
        };
        adopted += usize::from(adopt(broker, cluster, client_id, &owner, kv.mod_revision).await?);
    }
    if adopted > 0 {
        tracing::info!(
            sessions = adopted,
            "adopted the sessions of brokers that are gone"
        );
    }
    Ok(())
}

/// Adopts one orphaned session; false when there was nothing to adopt or someone else
/// claimed it first.
async fn adopt(
    broker: &Arc<Broker>,
    cluster: &Cluster,
    client_id: &str,
    owner: &broker_pb::SessionOwner,
    revision: i64,
) -> Result<bool, String> {
    let Some(state) = cluster.read_orphan(owner, client_id, false).await? else {
        // Not a persistent session: it ended with its broker.
        if let Err(e) = sessions::delete_owner(&cluster.client, client_id, owner).await {
            tracing::debug!(client_id, error = %e, "stale session owner record not removed");
        }
        return Ok(false);
    };
    let _adopting = cluster.adopting.start(client_id);
    if !sessions::write_owner(&cluster.client, client_id, revision, &cluster.as_owner())
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(false);
    }
    cluster.release_recovered(owner, client_id).await;
    let mut state = state;
    let expiry = state.expiry_interval;
    // The connection ended without DISCONNECT when its broker died: its will goes out
    // (after its delay, unless the client is back first).
    let will = state.will.take().and_then(|w| will_from_proto(*w));
    if expiry == 0 {
        // The session ended with its connection; only its will remained.
        if let Some(will) = will {
            broker.publish_orphaned_will(will);
        }
        if let Err(e) =
            sessions::delete_owner(&cluster.client, client_id, &cluster.as_owner()).await
        {
            tracing::debug!(client_id, error = %e, "ended session's owner record not removed");
        }
        return Ok(false);
    }
    let conn_id = broker.next_conn_id();
    let (kick, _) = oneshot::channel();
    let opened = broker
        .sessions
        .open(&client_id.into(), false, conn_id, kick);
    crate::connection::install_transferred(broker, &opened.session, state).await;
    opened.session.lock().expiry_interval = expiry;
    crate::connection::journal_session(broker, &opened.session, true, expiry, None).await;
    // Offline from here on: it queues until its client comes back, or expires.
    broker.release_session(&opened.session, conn_id, expiry);
    if let Some(will) = will {
        broker.publish_will(will, opened.session.clone(), opened.generation, expiry);
    }
    if let Some(log) = &cluster.log {
        log.metrics().adopted_sessions.inc();
    }
    tracing::info!(client_id, from = owner.node, "orphaned session adopted");
    Ok(true)
}

/// Sessions being adopted: a hand-over request for one waits until it is installed.
#[derive(Debug, Default)]
pub struct Adopting {
    clients: std::sync::Mutex<std::collections::HashSet<String>>,
    done: tokio::sync::Notify,
}

/// Removes its client from [`Adopting`] when dropped.
pub struct AdoptingGuard<'a> {
    adopting: &'a Adopting,
    client_id: String,
}

impl Drop for AdoptingGuard<'_> {
    fn drop(&mut self) {
        self.adopting.lock().remove(&self.client_id);
        self.adopting.done.notify_waiters();
    }
}

impl Adopting {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&self, client_id: &str) -> AdoptingGuard<'_> {
        self.lock().insert(client_id.to_owned());
        AdoptingGuard {
            adopting: self,
            client_id: client_id.to_owned(),
        }
    }

    /// Waits (at most `limit`) until `client_id` is not being adopted.
    pub async fn wait(&self, client_id: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let done = self.done.notified();
            if !self.lock().contains(client_id) {
                return;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return;
            }
        }
    }
}
