//! Registering a node: a lease, the node's key attached to it (always freshly created, so
//! its `create_revision` is a new epoch), a keep-alive, and a new registration with a new
//! epoch whenever the lease is lost.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{node_key, NodeInfo};
use crate::client::PlacementClient;
use crate::error::{Error, Result};
use crate::lease::LeaseKeeper;
use crate::pb;

/// How often one registration re-reads a node key that changed under it before giving up
/// (only a second live process with the same kind and id keeps changing it).
const MAX_CONFLICTS: usize = 8;
/// Backoff between attempts to register again after the lease was lost.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A node's registration, kept alive in the background; see [`PlacementClient::register`].
///
/// Dropping it stops the keep-alive (the key then disappears when the lease expires);
/// [`Registration::deregister`] removes the key at once.
pub struct Registration {
    client: PlacementClient,
    key: String,
    /// The current epoch; the background task publishes every new one.
    epochs: watch::Receiver<u64>,
    /// The lease granted last. Stored as soon as it is granted, before any key is attached
    /// to it, so that `deregister` never misses the lease of a registration in progress.
    lease: Arc<AtomicI64>,
    /// Keeps the lease alive and registers again when it is lost.
    task: JoinHandle<()>,
}

impl PlacementClient {
    /// Grants a lease of `ttl_secs`, puts `node_key(kind, id)` = JSON(info) attached to it
    /// and keeps it alive. The epoch is the key's `create_revision`: unique and increasing
    /// cluster-wide, so a new incarnation of a node always has a higher epoch than any
    /// older one (an older incarnation's key is replaced, not updated).
    pub async fn register(&self, info: NodeInfo, ttl_secs: i64) -> Result<Registration> {
        let key = node_key(&info.kind, info.id);
        let value = serde_json::to_vec(&info).expect("strings and integers serialize");
        let lease = Arc::new(AtomicI64::new(0));
        let (keeper, epoch) = self.register_once(&key, &value, ttl_secs, &lease).await?;
        tracing::info!(%key, epoch, lease = keeper.id(), "registered in the placement center");
        let (tx, epochs) = watch::channel(epoch);
        let task = tokio::spawn(keep_registered(
            self.clone(),
            key.clone(),
            value,
            ttl_secs,
            lease.clone(),
            keeper,
            tx,
        ));
        Ok(Registration {
            client: self.clone(),
            key,
            epochs,
            lease,
            task,
        })
    }

    /// One registration: a new lease, kept alive from the start (the put may take a while
    /// with retries), and the key created under it.
    async fn register_once(
        &self,
        key: &str,
        value: &[u8],
        ttl: i64,
        lease: &AtomicI64,
    ) -> Result<(LeaseKeeper, u64)> {
        let granted = self.lease_grant(ttl).await?;
        lease.store(granted.id, Ordering::SeqCst);
        let keeper = self.keep_alive(granted.id, granted.ttl);
        let epoch = self.claim(key, value, granted.id).await?;
        Ok((keeper, epoch))
    }

    /// Creates `key` attached to `lease` and returns its `create_revision`.
    ///
    /// One transaction: if the key's `mod_revision` is what we last saw (0: absent), delete
    /// it and put it anew (a fresh `create_revision`), then read it back; otherwise just
    /// read it. The read decides: our lease on the key means it is ours, whichever attempt
    /// wrote it — so a transaction the client retried after it had in fact applied still
    /// yields the right epoch, and is not applied twice (its compare then fails).
    async fn claim(&self, key: &str, value: &[u8], lease: i64) -> Result<u64> {
        let mut seen = 0;
        for _ in 0..MAX_CONFLICTS {
            let resp = self.txn(claim_txn(key, value, lease, seen)).await?;
            let kv = resp
                .responses
                .into_iter()
                .last()
                .and_then(|r| match r.response {
                    Some(pb::response_op::Response::Get(g)) => g.kv,
                    _ => None,
                });
            match kv {
                Some(kv) if kv.lease == lease => return Ok(kv.create_revision as u64),
                Some(kv) => {
                    tracing::warn!(%key, old_lease = kv.lease, old_epoch = kv.create_revision, "node key held by another lease (an earlier incarnation, or a duplicate node id); replacing it");
                    seen = kv.mod_revision;
                }
                None => seen = 0,
            }
        }
        Err(Error::Status(Box::new(tonic::Status::aborted(format!(
            "{key} kept changing while registering"
        )))))
    }
}

/// The transaction of [`PlacementClient::claim`].
fn claim_txn(key: &str, value: &[u8], lease: i64, seen_mod_revision: i64) -> pb::TxnRequest {
    use pb::request_op::Request;
    let op = |r| pb::RequestOp { request: Some(r) };
    let get = || {
        op(Request::Get(pb::GetRequest {
            key: key.into(),
            serializable: false,
        }))
    };
    pb::TxnRequest {
        compare: vec![pb::Compare {
            key: key.into(),
            result: pb::compare::Result::Equal as i32,
            target: Some(pb::compare::Target::ModRevision(seen_mod_revision)),
        }],
        success: vec![
            op(Request::Delete(pb::DeleteRequest {
                key: key.into(),
                prev_kv: false,
            })),
            op(Request::Put(pb::PutRequest {
                key: key.into(),
                value: value.to_vec(),
                lease,
                prev_kv: false,
            })),
            get(),
        ],
        failure: vec![get()],
    }
}

/// Waits for the lease to be lost, then registers again (new lease, new epoch) with
/// backoff until it succeeds; forever, until the registration is dropped.
async fn keep_registered(
    client: PlacementClient,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    lease: Arc<AtomicI64>,
    mut keeper: LeaseKeeper,
    epochs: watch::Sender<u64>,
) {
    loop {
        keeper.expired().await;
        tracing::warn!(%key, lease = keeper.id(), epoch = *epochs.borrow(), "node registration lost (lease expired or revoked); registering again with a new epoch");
        let mut backoff = RETRY_MIN;
        keeper = loop {
            match client.register_once(&key, &value, ttl, &lease).await {
                Ok((k, epoch)) => {
                    tracing::info!(%key, epoch, lease = k.id(), "registered again in the placement center");
                    epochs.send_replace(epoch);
                    break k;
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, retry_in = ?backoff, "registering in the placement center failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        };
    }
}

impl Registration {
    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        *self.epochs.borrow()
    }

    /// The epoch, changing whenever the node registers again after losing its lease.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epochs.clone()
    }

    /// The key this registration holds.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease the key is attached to (the latest one granted).
    pub fn lease_id(&self) -> i64 {
        self.lease.load(Ordering::SeqCst)
    }

    /// Revokes the lease (graceful shutdown: the key disappears at once for every watcher).
    /// A lease that already expired is not an error.
    pub async fn deregister(mut self) -> Result<()> {
        self.task.abort();
        let _ = (&mut self.task).await;
        let lease = self.lease_id();
        match self.client.lease_revoke(lease).await {
            Ok(_) => {
                tracing::info!(key = %self.key, lease, "deregistered from the placement center");
                Ok(())
            }
            Err(e) if e.code() == Some(tonic::Code::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_replaces_only_the_key_state_it_saw_and_always_reads_back() {
        let txn = claim_txn("/cluster/nodes/broker/1", b"{}", 9, 0);
        let compare = &txn.compare[0];
        assert_eq!(compare.target, Some(pb::compare::Target::ModRevision(0)));
        assert_eq!(compare.result, pb::compare::Result::Equal as i32);
        let kinds: Vec<_> = txn
            .success
            .iter()
            .map(|op| match op.request.as_ref().unwrap() {
                pb::request_op::Request::Delete(_) => "delete",
                pb::request_op::Request::Put(p) => {
                    assert_eq!(p.lease, 9);
                    "put"
                }
                pb::request_op::Request::Get(_) => "get",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["delete", "put", "get"]);
        assert!(matches!(
            txn.failure[..],
            [pb::RequestOp {
                request: Some(pb::request_op::Request::Get(_))
            }]
        ));
    }
}
