//! The broker in a cluster: membership, the route table, forwarding and retained
//! messages shared through the placement center.
//!
//! * membership: the broker registers under `/cluster/nodes/broker/{id}` with a lease
//!   (`placement_client::Registration`); its epoch (the registration's create revision)
//!   fences stale incarnations; peers come from watching the other registrations.
//! * `routes`: this node's route-table entries, written before SUBACK.
//! * `cache`: every node's entries mirrored into a trie; a PUBLISH is planned from it.
//! * `forward` / `service`: messages to and from peers over gRPC, batched, bounded.
//! * `retained`: retained messages as placement-center records, mirrored locally.
//! * `sessions` / `claim`: which broker owns each client's session; hand-over on
//!   reconnect, or recovery from the session log of a broker that is gone.
//! * `durable`: the session log in the journal (durability); `adopt`: the sessions of a
//!   dead broker, adopted by a live one.
//! * `access`: users and the ACL kept in the placement center.
//!
//! Nothing on the publish path calls the placement center except a retained PUBLISH,
//! so publishing goes on while the placement center elects a new leader.

pub mod access;
pub mod adopt;
pub mod barrier;
pub mod cache;
mod claim;
pub mod convert;
pub mod durable;
pub mod forward;
pub mod metrics;
pub mod mirror;
pub mod replay;
pub mod retained;
pub mod routes;
pub mod service;
pub mod sessions;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common_metrics::grpc::{GrpcClientLayer, GrpcClientMetrics};
use placement_client::{ClientConfig, NodeInfo, PlacementClient, Registration};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Published};
use crate::config::ClusterConfig;
use crate::message::Message;
use crate::message_trace::MessageTracer;
use crate::session::Subscription;
use cache::{ForwardPlan, RouteCache};
use durable::{LogMetrics, SessionLog};
use forward::{ForwardRuntime, Outgoing, Peers, SenderContext};
use metrics::ClusterMetrics;
use robustmq_proto::broker as broker_pb;
use robustmq_proto::broker::await_mirror_request::Mirror;
use routes::{LeaseId, RouteError, RouteKey, RouteWriter};

/// The node kind brokers register as.
pub const BROKER_KIND: &str = "broker";
/// The node kind journal servers register as.
pub const JOURNAL_KIND: &str = "journal";

/// How long leaving the cluster may wait for the placement center at shutdown.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// This broker's part in the cluster.
pub struct Cluster {
    node_id: u64,
    config: ClusterConfig,
    client: PlacementClient,
    routes: RouteWriter,
    cache: Arc<RouteCache>,
    peers: Arc<Peers>,
    /// This incarnation's fencing epoch; 0 until registered.
    epoch: Arc<AtomicU64>,
    /// The registration lease the route entries are attached to.
    lease: watch::Sender<LeaseId>,
    /// Highest epoch seen per peer: forwards from a lower one are refused.
    fences: Arc<Mutex<HashMap<u64, u64>>>,
    /// What peers forwarded and this node delivered (resent batches deliver once).
    pub delivered: replay::DeliveredSeqs,
    /// Revision up to which retained records are applied locally (-1: not yet listed).
    retained_applied: watch::Sender<i64>,
    /// Revision up to which the route cache is complete (-1: not yet listed).
    routes_synced: watch::Sender<i64>,
    registration: Arc<tokio::sync::Mutex<Option<Registration>>>,
    metrics: ClusterMetrics,
    /// This broker's session log: set when durability is on.
    pub log: Option<Arc<SessionLog>>,
    /// Orphaned sessions this node is adopting right now.
    pub adopting: adopt::Adopting,
    /// Stops the background tasks (mirrors, membership) on shutdown.
    stop: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster layer of node `config.node_id`, with its metrics in `registry`
    /// (which carries the `robustmq` prefix). Nothing is contacted yet.
    pub fn new(config: &ClusterConfig, registry: &mut Registry) -> Result<Self, String> {
        let metrics = ClusterMetrics::register(registry);
        let grpc = GrpcClientMetrics::register(registry);
        let mut client_config = ClientConfig::new(config.placement_endpoints.clone())
            .with_timeout(Duration::from_secs(config.placement_timeout_secs));
        client_config.metrics = Some(grpc.clone());
        let client = PlacementClient::new(client_config)
            .map_err(|e| format!("cluster.placement_endpoints: {e}"))?;
        let stop = CancellationToken::new();
        let epoch = Arc::new(AtomicU64::new(0));
        let runtime = ForwardRuntime::new().map_err(|e| format!("forward runtime: {e}"))?;
        let peers = Arc::new(Peers::new(
            SenderContext {
                node_id: config.node_id,
                epoch: epoch.clone(),
                batch: config.forward_batch,
                queue: config.forward_queue,
                qos0_wait: Duration::from_millis(config.forward_qos0_wait_ms),
                metrics: metrics.clone(),
                layer: GrpcClientLayer::new(grpc),
            },
            runtime,
        ));
        let log_metrics = LogMetrics::register(registry);
        let log = config
            .durability
            .then(|| Arc::new(SessionLog::new(config.node_id, epoch.clone(), log_metrics)));
        let (lease, lease_rx) = watch::channel(0);
        let routes = routes::start(
            client.clone(),
            config.node_id,
            peers.clone(),
            lease_rx,
            metrics.clone(),
            stop.clone(),
        );
        Ok(Self {
            node_id: config.node_id,
            config: config.clone(),
            client,
            routes,
            cache: Arc::new(RouteCache::new(config.node_id, metrics.routes.clone())),
            peers,
            epoch,
            lease,
            fences: Default::default(),
            delivered: Default::default(),
            retained_applied: watch::channel(-1).0,
            routes_synced: watch::channel(-1).0,
            registration: Default::default(),
            metrics,
            log,
            adopting: Default::default(),
            stop,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// This incarnation's fencing epoch (0 before it registered).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    /// Joins the cluster: clears what an earlier incarnation left, registers, follows
    /// the other brokers, and mirrors the route table and retained messages. Returns
    /// once the mirrors hold the state as of joining (the broker is then ready). Retries
    /// while the placement center is unreachable; `Err` only when stopped first.
    pub async fn join(&self, broker: &Arc<Broker>, info: NodeInfo) -> Result<(), String> {
        let registration = self
            .retry("register in the placement center", || async {
                routes::clear_node(&self.client, self.node_id)
                    .await
                    .map_err(|e| e.to_string())?;
                self.client
                    .register(info.clone(), self.config.lease_ttl_secs)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await?;
        self.epoch.store(registration.epoch(), Ordering::Release);
        self.lease.send_replace(registration.lease_id());
        tracing::info!(
            node_id = self.node_id,
            epoch = registration.epoch(),
            "registered in the placement center"
        );
        let epochs = registration.epochs();
        *self.registration.lock().await = Some(registration);
        tokio::spawn(follow_registration(
            epochs,
            self.registration.clone(),
            self.epoch.clone(),
            self.lease.clone(),
            self.stop.clone(),
        ));

        if let Some(log) = &self.log {
            let journals = self
                .retry("watch the registered journal nodes", || async {
                    self.client
                        .watch_members(JOURNAL_KIND)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await?;
            log.start(self.stop.clone(), broker.config.message_tracing.clone());
            tokio::spawn(follow_journal_nodes(
                journals,
                log.clone(),
                self.stop.clone(),
            ));
        }

        let members = self
            .retry("watch the registered brokers", || async {
                self.client
                    .watch_members(BROKER_KIND)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await?;
        if self.log.is_some() {
            tokio::spawn(adopt::run(
                broker.clone(),
                members.changes(),
                self.stop.clone(),
            ));
        }
        tokio::spawn(follow_members(
            members,
            self.peers.clone(),
            self.fences.clone(),
            self.stop.clone(),
        ));
        tokio::spawn(mirror::run(
            self.client.clone(),
            routes::ROUTES_PREFIX.into(),
            self.cache.clone(),
            self.routes_synced.clone(),
            self.stop.clone(),
        ));
        tokio::spawn(mirror::run(
            self.client.clone(),
            retained::RETAINED_PREFIX.into(),
            retained::RetainedMirror {
                store: broker.retained.clone(),
                gauge: broker.metrics.retained.clone(),
            },
            self.retained_applied.clone(),
            self.stop.clone(),
        ));
        // Users and the ACL: a CONNECT is checked against the cluster's from the start.
        let users_synced = watch::channel(-1).0;
        let acl_synced = watch::channel(-1).0;
        tokio::spawn(mirror::run(
            self.client.clone(),
            access::USERS_PREFIX.into(),
            access::UsersMirror(broker.auth.cluster_users().clone()),
            users_synced.clone(),
            self.stop.clone(),
        ));
        tokio::spawn(mirror::run(
            self.client.clone(),
            access::ACL_KEY.into(),
            access::AclMirror(broker.acl.cluster().clone()),
            acl_synced.clone(),
            self.stop.clone(),
        ));
        for synced in [
            &self.routes_synced,
            &self.retained_applied,
            &users_synced,
            &acl_synced,
        ] {
            let mut rx = synced.subscribe();
            tokio::select! {
                _ = rx.wait_for(|r| *r >= 0) => {}
                _ = self.stop.cancelled() => return Err("stopped while joining".into()),
            }
        }
        // Persistent sessions connecting now would otherwise wait for the session log's
        // shard to be created and elect a leader.
        if let Some(log) = &self.log {
            if !log.ready(Duration::from_secs(15)).await {
                tracing::warn!("the session log is not ready after 15 s; serving anyway (persistent sessions wait for it)");
            }
        }
        Ok(())
    }

    /// Calls `f` until it succeeds, with backoff, logging failures; `Err` when stopped.
    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = tokio::select! {
                r = f() => r,
                _ = self.stop.cancelled() => return Err(format!("stopped before we could {what}")),
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => tracing::warn!(error = %e, "cannot {what} yet; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.cancelled() => return Err(format!("stopped before we could {what}")),
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Leaves the cluster: deregisters (the routes go with the lease at once, so peers
    /// stop forwarding here) and stops the background tasks.
    pub async fn leave(&self) {
        if let Some(registration) = self.registration.lock().await.take() {
            // Bounded: a placement center without a leader must not hold up a shutdown
            // (the orchestrator's grace period is short); the lease ends it anyway.
            match tokio::time::timeout(LEAVE_TIMEOUT, registration.deregister()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not deregister; the lease will expire")
                }
                Err(_) => tracing::warn!(
                    timeout = ?LEAVE_TIMEOUT,
                    "deregistering took too long; the lease will expire"
                ),
            }
        }
        self.stop.cancel();
    }

    /// Where `message` goes beyond this node.
    pub fn plan(&self, message: &Message) -> ForwardPlan {
        self.cache.plan(message)
    }

    /// Queues `message` for each peer in `plan` without waiting, counting in
    /// `published` the peers that will get it. With durability on, a QoS 1/2 message
    /// adds a wait for each peer's answer to `published.pending`. Returns the QoS 1/2
    /// messages whose peer's queue is full: [`Cluster::send_when_room`] queues them.
    pub fn forward(
        &self,
        message: &Arc<Message>,
        plan: ForwardPlan,
        tracer: &MessageTracer,
        published: &mut Published,
    ) -> Vec<(u64, Outgoing)> {
        let acked = self.log.is_some() && message.qos != mqtt_codec::QoS::AtMostOnce;
        let mut full = Vec::new();
        for (node, shared) in plan.nodes {
            let span = message
                .trace
                .as_deref()
                .map(|parent| tracer.forward_span(parent, message, node));
            let out = Outgoing {
                message: message.clone(),
                shared,
                span,
                seq: 0,
                ack: acked.then(|| published.pending.peer()),
            };
            match self.peers.try_send(node, out) {
                Ok(sent) => published.queued += usize::from(sent),
                Err(out) => full.push((node, out)),
            }
        }
        full
    }

    /// Queues a QoS 1/2 message that [`Cluster::forward`] found no room for, once there
    /// is room (backpressure: the publisher's acknowledgement waits). False when the
    /// peer left meanwhile.
    pub async fn send_when_room(&self, node: u64, out: Outgoing) -> bool {
        self.peers.send_when_room(node, out).await
    }

    /// Counts a new local subscription in the route table; returns once the route is
    /// visible cluster-wide.
    pub async fn add_route(&self, sub: &Subscription) -> Result<(), RouteError> {
        self.routes.add(RouteKey::of(sub)).await
    }

    /// Counts a local subscription less in the route table.
    pub fn remove_route(&self, sub: &Subscription) {
        self.routes.remove(RouteKey::of(sub));
    }

    /// Stores a retained message cluster-wide; returns once every broker applied it.
    pub async fn retain(&self, message: &Message) -> Result<(), String> {
        let mut applied = self.retained_applied.subscribe();
        let wait = Duration::from_secs(self.config.placement_timeout_secs);
        let revision = retained::store(&self.client, message, &mut applied, wait).await?;
        barrier::await_peers(&self.peers, Mirror::Retained, revision).await;
        Ok(())
    }

    /// The revision `mirror` has applied, as it advances.
    pub fn mirror_revision(&self, mirror: Mirror) -> watch::Receiver<i64> {
        match mirror {
            Mirror::Routes => self.routes_synced.subscribe(),
            Mirror::Retained => self.retained_applied.subscribe(),
        }
    }

    /// This node as a session owner.
    fn as_owner(&self) -> broker_pb::SessionOwner {
        broker_pb::SessionOwner {
            node: self.node_id,
            epoch: self.epoch(),
        }
    }

    /// Forgets the owner record of a session that ended on this node.
    pub fn session_ended(&self, client_id: &str) {
        let (client, owner, id) = (self.client.clone(), self.as_owner(), client_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = sessions::delete_owner(&client, &id, &owner).await {
                tracing::warn!(client_id = %id, error = %e, "could not remove the session owner record");
            }
        });
    }

    /// Checks a peer's epoch: `Err(newest)` when a newer incarnation of it was seen.
    pub fn fence(&self, node: u64, epoch: u64) -> Result<(), u64> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let newest = fences.entry(node).or_insert(epoch);
        if epoch < *newest {
            return Err(*newest);
        }
        *newest = epoch;
        Ok(())
    }
}

/// Keeps the epoch and lease current when the registration is renewed under a new lease.
async fn follow_registration(
    mut epochs: watch::Receiver<u64>,
    registration: Arc<tokio::sync::Mutex<Option<Registration>>>,
    epoch: Arc<AtomicU64>,
    lease: watch::Sender<LeaseId>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = epochs.changed() => if changed.is_err() { return },
            _ = stop.cancelled() => return,
        }
        let now = *epochs.borrow_and_update();
        epoch.store(now, Ordering::Release);
        // The registration stores its new lease before it publishes the new epoch.
        let Some(id) = registration
            .lock()
            .await
            .as_ref()
            .map(Registration::lease_id)
        else {
            return;
        };
        lease.send_replace(id);
        tracing::warn!(
            epoch = now,
            "re-registered in the placement center under a new lease"
        );
    }
}

/// Keeps the session log's journal addresses in step with the registered journal nodes.
async fn follow_journal_nodes(
    members: placement_client::Members,
    log: Arc<SessionLog>,
    stop: CancellationToken,
) {
    let mut changes = members.changes();
    loop {
        let addrs = changes
            .borrow_and_update()
            .values()
            .map(|m| m.info.grpc.clone())
            .collect();
        log.set_journal_nodes(addrs);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

/// Keeps the peers and their fences in step with the registered brokers.
async fn follow_members(
    members: placement_client::Members,
    peers: Arc<Peers>,
    fences: Arc<Mutex<HashMap<u64, u64>>>,
    stop: CancellationToken,
) {
    let mut changes = members.changes();
    loop {
        let current = changes.borrow_and_update().clone();
        {
            let mut fences = fences.lock().unwrap_or_else(|e| e.into_inner());
            for (id, member) in &current {
                let newest = fences.entry(*id).or_insert(member.epoch);
                *newest = (*newest).max(member.epoch);
            }
        }
        peers.update(&current);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fences_refuse_older_epochs_of_the_same_node() {
        let config = ClusterConfig {
            placement_endpoints: vec!["127.0.0.1:1".into()],
            ..Default::default()
        };
        let cluster = Cluster::new(&config, &mut Registry::default()).unwrap();
        assert_eq!(cluster.fence(2, 10), Ok(()));
        assert_eq!(cluster.fence(2, 12), Ok(()), "a newer incarnation");
        assert_eq!(cluster.fence(2, 11), Err(12), "the older one is now stale");
        assert_eq!(cluster.fence(2, 12), Ok(()));
        assert_eq!(cluster.fence(3, 1), Ok(()), "fences are per node");
    }
}
