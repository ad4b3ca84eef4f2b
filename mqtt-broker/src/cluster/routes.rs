//! This node's entries in the cluster route table: which filters (and shared groups)
//! have subscribers here.
//!
//! Keys live in the placement center under `/mqtt/routes/{node}/f/{filter}` and
//! `/mqtt/routes/{node}/s/{group}/{filter}`, attached to the node's registration lease,
//! so a crashed broker's routes disappear with its lease. Subscriptions are counted per
//! key here: the first local subscriber writes the key, the last one to leave deletes
//! it. One writer task applies changes in order, batching whatever queued up meanwhile
//! into one transaction (one Raft entry); a SUBSCRIBE waits until its key is committed
//! and every peer has applied it (`barrier`), so a message published anywhere after the
//! SUBACK finds the route.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mqtt_codec::ByteString;
use placement_client::{pb, PlacementClient};
use robustmq_proto::broker::await_mirror_request::Mirror;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::barrier;
use super::forward::Peers;
use super::metrics::ClusterMetrics;
use crate::router::SharedKey;
use crate::session::Subscription;

/// Where every node's routes live.
pub const ROUTES_PREFIX: &str = "/mqtt/routes/";
/// Operations per transaction at most (a re-registration rewrites every key).
const MAX_TXN_OPS: usize = 1000;

/// One route-table entry of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// Ordinary subscribers of a filter.
    Filter(ByteString),
    /// Members of a shared-subscription group.
    Shared(SharedKey),
}

impl RouteKey {
    /// The entry a subscription needs.
    pub fn of(sub: &Subscription) -> Self {
        match &sub.share_group {
            None => Self::Filter(sub.filter.clone()),
            Some(group) => Self::Shared(SharedKey {
                group: group.clone(),
                filter: sub.filter.clone(),
            }),
        }
    }

    /// The placement-center key of this entry for `node`.
    pub fn key(&self, node: u64) -> String {
        match self {
            Self::Filter(filter) => format!("{ROUTES_PREFIX}{node}/f/{filter}"),
            Self::Shared(k) => format!("{ROUTES_PREFIX}{node}/s/{}/{}", k.group, k.filter),
        }
    }

    /// Parses a key written by [`RouteKey::key`]; `None` for anything else.
    pub fn parse(key: &str) -> Option<(u64, Self)> {
        let rest = key.strip_prefix(ROUTES_PREFIX)?;
        let (node, rest) = rest.split_once('/')?;
        let node = node.parse().ok()?;
        let (kind, rest) = rest.split_once('/')?;
        let route = match kind {
            "f" if !rest.is_empty() => Self::Filter(rest.into()),
            "s" => {
                let (group, filter) = rest.split_once('/')?;
                if group.is_empty() || filter.is_empty() {
                    return None;
                }
                Self::Shared(SharedKey {
                    group: group.into(),
                    filter: filter.into(),
                })
            }
            _ => return None,
        };
        Some((node, route))
    }
}

/// The route table could not be updated.
#[derive(Debug, Clone, thiserror::Error)]
#[error("route table update failed: {0}")]
pub struct RouteError(pub String);

enum Op {
    Add(RouteKey, oneshot::Sender<Result<(), RouteError>>),
    Remove(RouteKey),
}

/// The handle connections use; cheap to clone.
#[derive(Debug, Clone)]
pub struct RouteWriter {
    tx: mpsc::UnboundedSender<Op>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Add(k, _) => write!(f, "Add({k:?})"),
            Op::Remove(k) => write!(f, "Remove({k:?})"),
        }
    }
}

impl RouteWriter {
    /// Counts one more local subscriber of `key`; returns once the entry is in the
    /// placement center.
    pub async fn add(&self, key: RouteKey) -> Result<(), RouteError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Add(key, tx))
            .map_err(|_| RouteError("the cluster layer has stopped".into()))?;
        rx.await
            .map_err(|_| RouteError("the cluster layer has stopped".into()))?
    }

    /// Counts one local subscriber of `key` less (the entry goes with the last one).
    pub fn remove(&self, key: RouteKey) {
        let _ = self.tx.send(Op::Remove(key));
    }
}

/// The lease this node's keys are attached to; 0 until registered.
pub type LeaseId = i64;

/// Starts the writer task for `node`'s entries; it waits for a lease before writing.
pub fn start(
    client: PlacementClient,
    node: u64,
    peers: Arc<Peers>,
    lease: watch::Receiver<LeaseId>,
    metrics: ClusterMetrics,
    stop: CancellationToken,
) -> RouteWriter {
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = Writer {
        client,
        node,
        peers,
        counts: HashMap::new(),
        failed_deletes: HashSet::new(),
        metrics,
    };
    tokio::spawn(writer.run(rx, lease, stop));
    RouteWriter { tx }
}

struct Writer {
    client: PlacementClient,
    node: u64,
    /// Asked to apply new routes before subscribers are answered.
    peers: Arc<Peers>,
    /// Local subscribers per entry; an entry is in the placement center while counted.
    counts: HashMap<RouteKey, usize>,
    /// Entries whose delete failed; retried with the next batch.
    failed_deletes: HashSet<RouteKey>,
    metrics: ClusterMetrics,
}

impl Writer {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Op>,
        mut lease: watch::Receiver<LeaseId>,
        stop: CancellationToken,
    ) {
        // Nothing can be written before the node holds a lease.
        tokio::select! {
            r = lease.wait_for(|id| *id != 0) => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
        lease.mark_unchanged();
        let mut ops = Vec::new();
        loop {
            tokio::select! {
                n = rx.recv_many(&mut ops, MAX_TXN_OPS) => {
                    if n == 0 {
                        return;
                    }
                    let current = *lease.borrow();
                    self.apply(ops.drain(..), current).await;
                }
                changed = lease.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A new lease (re-registration after the old one expired): the old
                    // lease took every entry with it, so write them all again.
                    let current = *lease.borrow_and_update();
                    let all: Vec<RouteKey> = self.counts.keys().cloned().collect();
                    tracing::info!(entries = all.len(), lease = current, "rewriting routes under a new lease");
                    for chunk in all.chunks(MAX_TXN_OPS) {
                        if let Err(e) = self.write(chunk, &[], current).await {
                            self.metrics.route_update_failures.inc();
                            tracing::error!(error = %e, "cannot rewrite routes under the new lease");
                        }
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Applies one batch of operations in order, then writes the net change.
    async fn apply(&mut self, ops: impl Iterator<Item = Op>, lease: LeaseId) {
        let mut puts: Vec<RouteKey> = Vec::new();
        let mut deletes: Vec<RouteKey> = self.failed_deletes.drain().collect();
        let mut waiters = Vec::new();
        for op in ops {
            match op {
                Op::Add(key, done) => {
                    let count = self.counts.entry(key.clone()).or_insert(0);
                    *count += 1;
                    if *count == 1 {
                        deletes.retain(|k| *k != key);
                        puts.push(key.clone());
                    }
                    if puts.contains(&key) {
                        waiters.push((key, done));
                    } else {
                        let _ = done.send(Ok(()));
                    }
                }
                Op::Remove(key) => {
                    let Some(count) = self.counts.get_mut(&key) else {
                        continue;
                    };
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&key);
                        if let Some(i) = puts.iter().position(|k| *k == key) {
                            puts.swap_remove(i);
                        } else {
                            deletes.push(key);
                        }
                    }
                }
            }
        }
        if puts.is_empty() && deletes.is_empty() {
            for (_, done) in waiters {
                let _ = done.send(Ok(()));
            }
            return;
        }
        let result = self.write(&puts, &deletes, lease).await;
        if let (Ok(revision), false) = (&result, puts.is_empty()) {
            barrier::await_peers(&self.peers, Mirror::Routes, *revision).await;
        }
        let result = result.map(drop);
        if let Err(e) = &result {
            self.metrics.route_update_failures.inc();
            tracing::warn!(error = %e, puts = puts.len(), deletes = deletes.len(), "route table update failed");
            // Subscribers of entries that were not written are told so, and the entries
            // are forgotten (the callers undo their local subscriptions).
            for key in &puts {
                self.counts.remove(key);
            }
            self.failed_deletes.extend(deletes);
        }
        for (_, done) in waiters {
            let _ = done.send(result.clone());
        }
    }

    async fn write(
        &self,
        puts: &[RouteKey],
        deletes: &[RouteKey],
        lease: LeaseId,
    ) -> Result<i64, RouteError> {
        use pb::request_op::Request;
        let mut success = Vec::with_capacity(puts.len() + deletes.len());
        for key in puts {
            success.push(pb::RequestOp {
                request: Some(Request::Put(pb::PutRequest {
                    key: key.key(self.node).into_bytes(),
                    value: Vec::new(),
                    lease,
                    prev_kv: false,
                })),
            });
        }
        for key in deletes {
            success.push(pb::RequestOp {
                request: Some(Request::Delete(pb::DeleteRequest {
                    key: key.key(self.node).into_bytes(),
                    prev_kv: false,
                })),
            });
        }
        let txn = pb::TxnRequest {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        };
        self.client
            .txn(txn)
            .await
            .map(|r| r.header.map_or(0, |h| h.revision))
            .map_err(|e| RouteError(e.to_string()))
    }
}

/// Removes every entry an earlier incarnation of `node` left behind (its lease may not
/// have expired yet); called before this incarnation writes its own.
pub async fn clear_node(client: &PlacementClient, node: u64) -> placement_client::Result<()> {
    client
        .delete_prefix(format!("{ROUTES_PREFIX}{node}/"))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_slashes_and_wildcards() {
        let routes = [
            RouteKey::Filter("a/+/c/#".into()),
            RouteKey::Filter("/".into()),
            RouteKey::Shared(SharedKey {
                group: "g1".into(),
                filter: "jobs//x".into(),
            }),
        ];
        for route in routes {
            let key = route.key(42);
            assert_eq!(RouteKey::parse(&key), Some((42, route)), "{key}");
        }
    }

    #[test]
    fn foreign_keys_are_ignored() {
        for key in [
            "/mqtt/retained/a",
            "/mqtt/routes/x/f/a",
            "/mqtt/routes/1/q/a",
            "/mqtt/routes/1/f/",
            "/mqtt/routes/1/s/g",
        ] {
            assert_eq!(RouteKey::parse(key), None, "{key}");
        }
    }
}
