//! The broker's shared state and the operations connections perform on it: publish a
//! message (locally and, in a cluster, to the peers the route table names), deliver
//! retained messages, publish or schedule a will, release a session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{QoS, RetainHandling};
use tokio_util::sync::CancellationToken;

use crate::acl::Acl;
use crate::auth::Authenticator;
use crate::cluster::durable::{Pending, Receipt, SessionLog};
use crate::cluster::forward::Outgoing;
use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::fanout::Fanout;
use crate::message::{Delivery, Message, Will};
use crate::message_trace::MessageTracer;
use crate::metrics::{BrokerMetrics, DropReason};
use crate::retained::{MemoryRetainedStore, RetainedStore};
use crate::router::{Router, SharedSelection};
use crate::session::{Enqueued, QueueLimits, Session, SessionRegistry, Subscription};
use crate::sys::SysStats;

/// What [`Broker::deliver_local`] did with a message.
#[derive(Debug)]
pub struct Delivered {
    /// Local sessions it was queued for.
    pub queued: usize,
    /// Its session-log record, when persistent sessions here got it.
    pub receipt: Option<Receipt>,
}

/// What [`Broker::publish`] did with a message.
#[derive(Debug, Default)]
pub struct Published {
    /// Local sessions and peers it went to.
    pub queued: usize,
    /// What the publisher's PUBACK/PUBREC waits for: empty unless durability is on.
    pub pending: Pending,
}

impl From<Delivered> for Published {
    fn from(d: Delivered) -> Self {
        Self {
            queued: d.queued,
            pending: Pending::journal(d.receipt),
        }
    }
}

/// What [`Broker::publish_now`] left to [`Broker::publish_rest`].
#[derive(Debug)]
pub enum Unfinished {
    /// A retained message: the store comes first (cluster-wide, through the placement
    /// center), then the delivery.
    Retain,
    /// Delivered and queued everywhere else, but these peers' forward queues are full
    /// and the message (QoS 1/2) waits for room in them.
    Waiting(Waiting),
}

/// A publish held up by full forward queues (see [`Unfinished::Waiting`]).
#[derive(Debug)]
pub struct Waiting {
    published: Published,
    peers: Vec<(u64, Outgoing)>,
}

/// Everything connections share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub router: Router,
    pub sessions: SessionRegistry,
    pub retained: Arc<dyn RetainedStore>,
    pub auth: Authenticator,
    pub acl: Acl,
    pub metrics: BrokerMetrics,
    /// Counters behind the `$SYS` topics.
    pub stats: SysStats,
    /// Membership, routes and forwarding when the broker is part of a cluster.
    pub cluster: Option<Arc<Cluster>>,
    /// Cancelled when the broker shuts down; every task watches it.
    pub shutdown: CancellationToken,
    /// Source of connection numbers (session ownership checks, logs).
    next_conn_id: AtomicU64,
    pub started: Instant,
    /// Starts the spans of traced messages.
    pub tracer: MessageTracer,
}

impl Broker {
    /// Shared state for a broker with this config, users, ACL and metrics.
    pub fn new(
        config: BrokerConfig,
        auth: Authenticator,
        acl: Acl,
        metrics: BrokerMetrics,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            tracer: MessageTracer::new(config.message_tracing.clone()),
            config,
            router: Router::default(),
            sessions: SessionRegistry::default(),
            retained: Arc::new(MemoryRetainedStore::default()),
            auth,
            acl,
            metrics,
            stats: SysStats::default(),
            cluster,
            shutdown: CancellationToken::new(),
            next_conn_id: AtomicU64::new(1),
            started: Instant::now(),
        }
    }

    /// A new connection number.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_queued: self.config.limits.max_queued_messages,
            queue_qos0_offline: self.config.limits.queue_qos0_offline,
        }
    }

    /// Publishes a message from a client (or a will): stores it if it is retained, queues
    /// it for every matching local session and, in a cluster, forwards it once to each
    /// peer with matching subscribers. QoS 1/2 waits here for room in a peer's forward
    /// queue (backpressure). `fanout` is reused across calls to avoid an allocation per
    /// message, and holds the wake-ups of the sessions it queued for (see
    /// [`crate::fanout`]). Returns the number of local sessions and peers it went to,
    /// and what the publisher's acknowledgement must wait for (with durability on).
    pub async fn publish(&self, message: Arc<Message>, fanout: &mut Fanout) -> Published {
        match self.publish_now(&message, fanout) {
            Ok(published) => published,
            Err(rest) => self.publish_rest(message, rest, fanout).await,
        }
    }

    /// [`Broker::publish`] as far as it goes without waiting, which is all of it unless
    /// the message is retained or meets a full forward queue: the common case, which
    /// then costs no future. Otherwise returns what is left for [`Broker::publish_rest`].
    pub fn publish_now(
        &self,
        message: &Arc<Message>,
        fanout: &mut Fanout,
    ) -> Result<Published, Unfinished> {
        if message.retain {
            return Err(Unfinished::Retain);
        }
        self.route_now(message, fanout).map_err(Unfinished::Waiting)
    }

    /// Finishes a publish that [`Broker::publish_now`] could not.
    pub async fn publish_rest(
        &self,
        message: Arc<Message>,
        rest: Unfinished,
        fanout: &mut Fanout,
    ) -> Published {
        // About to wait: the subscribers of the messages routed so far wait for nothing.
        fanout.wake();
        let waiting = match rest {
            Unfinished::Waiting(waiting) => waiting,
            Unfinished::Retain => {
                self.store_retained(&message).await;
                let routed = self.route_now(&message, fanout);
                fanout.wake();
                match routed {
                    Ok(published) => return published,
                    Err(waiting) => waiting,
                }
            }
        };
        let Waiting {
            mut published,
            peers,
        } = waiting;
        // Only a cluster leaves peers waiting.
        if let Some(cluster) = &self.cluster {
            for (node, out) in peers {
                published.queued += usize::from(cluster.send_when_room(node, out).await);
            }
        }
        published
    }

    /// Delivers `message` to the local sessions and queues it for the peers that want
    /// it, without waiting: a QoS 1/2 message that meets a full forward queue is
    /// returned, delivered and queued everywhere else, to wait for room.
    fn route_now(&self, message: &Arc<Message>, fanout: &mut Fanout) -> Result<Published, Waiting> {
        let remote = self
            .cluster
            .as_ref()
            .map(|cluster| (cluster, cluster.plan(message)))
            .filter(|(_, plan)| !plan.nodes.is_empty());
        let Some((cluster, plan)) = remote else {
            return Ok(self
                .deliver_counted(message, SharedSelection::All, fanout)
                .into());
        };
        let local = self.deliver_local(
            message,
            SharedSelection::Except(&plan.remote_groups),
            fanout,
        );
        let mut published = Published::from(local);
        let full = cluster.forward(message, plan, &self.tracer, &mut published);
        if full.is_empty() {
            Ok(published)
        } else {
            Err(Waiting {
                published,
                peers: full,
            })
        }
    }

    /// Updates the retained store: cluster-wide through the placement center when
    /// clustered (a failure is logged and counted; the message is still delivered).
    async fn store_retained(&self, message: &Arc<Message>) {
        match &self.cluster {
            Some(cluster) if crate::cluster::retained::is_shared(&message.topic) => {
                if let Err(e) = cluster.retain(message).await {
                    self.metrics.packet_error("retain_failed");
                    tracing::error!(topic = %message.topic, error = %e, "retained message not stored cluster-wide");
                }
            }
            _ => {
                self.retained.retain(message.clone());
                self.metrics.retained.set(self.retained.len() as i64);
            }
        }
    }

    /// [`Broker::deliver_local`], counting a message nobody receives as dropped.
    fn deliver_counted(
        &self,
        message: &Arc<Message>,
        shared: SharedSelection<'_>,
        fanout: &mut Fanout,
    ) -> Delivered {
        self.router.route(message, shared, &mut fanout.targets);
        // Broker-originated messages ($SYS) with no audience are not drops.
        if fanout.targets.is_empty() && !message.publisher.is_empty() {
            self.metrics
                .dropped(message.qos, DropReason::no_subscribers);
        }
        self.enqueue_targets(message, fanout)
    }

    /// Queues a message for the matching sessions of this node only, serving the shared
    /// groups `shared` selects. Returns the number of sessions it was queued for, and the
    /// receipt of its session-log record when persistent sessions got it.
    pub fn deliver_local(
        &self,
        message: &Arc<Message>,
        shared: SharedSelection<'_>,
        fanout: &mut Fanout,
    ) -> Delivered {
        self.router.route(message, shared, &mut fanout.targets);
        self.enqueue_targets(message, fanout)
    }

    /// Queues `message` for the routed `targets` (drained). QoS 1/2 deliveries to
    /// journaled (persistent) sessions are written to the session log first, so that an
    /// acknowledgement can never be written before the record it acknowledges.
    ///
    /// A session whose queue stops being empty is held in `fanout`, to be woken when the
    /// publisher's batch is done (`crate::fanout`).
    fn enqueue_targets(&self, message: &Arc<Message>, fanout: &mut Fanout) -> Delivered {
        let targets = &mut fanout.targets;
        let limits = self.queue_limits();
        let log = self
            .session_log()
            .filter(|_| message.qos != QoS::AtMostOnce);
        let mut durable = None;
        let mut receipt = None;
        // Which targets the record names (decided once: a session may become journaled
        // meanwhile).
        let mut journaled = Vec::new();
        if let Some(log) = log {
            journaled.extend(
                targets
                    .iter()
                    .map(|t| t.qos != QoS::AtMostOnce && t.session.is_journaled()),
            );
            let logged: Vec<_> = targets
                .iter()
                .zip(&journaled)
                .filter(|(_, journaled)| **journaled)
                .map(|(t, _)| robustmq_proto::broker::SessionTarget {
                    client_id: t.session.client_id.to_string(),
                    qos: t.qos as u32,
                    retain: message.retain && t.retain_as_published,
                    subscription_ids: t.subscription_ids.clone(),
                })
                .collect();
            if !logged.is_empty() {
                let id = log.next_id();
                receipt = Some(log.enqueued(id, message, logged));
                durable = Some(id);
            }
        }
        let mut queued = 0;
        for (i, target) in targets.drain(..).enumerate() {
            let span = message.trace.as_deref().map(|parent| {
                Arc::new(self.tracer.deliver_span(
                    parent,
                    message,
                    &target.session.client_id,
                    target.qos,
                ))
            });
            let durable = durable.filter(|_| journaled[i]);
            let delivery = Delivery {
                message: message.clone(),
                qos: target.qos,
                retain: message.retain && target.retain_as_published,
                subscription_ids: target.subscription_ids,
                span,
                durable,
                replay: false,
            };
            let (enqueued, wake) = target.session.push(delivery, limits);
            if enqueued == Enqueued::Queued {
                queued += 1;
                if wake {
                    fanout.wakes.push(target.session);
                }
                continue;
            }
            if let (Some(log), Some(id)) = (log, durable) {
                log.done(&target.session.client_id, id);
            }
            match enqueued {
                Enqueued::DroppedOffline => self.metrics.dropped(target.qos, DropReason::offline),
                _ => self.metrics.dropped(target.qos, DropReason::queue_full),
            }
        }
        fanout.routed();
        Delivered { queued, receipt }
    }

    /// This broker's session log, when durability is on.
    pub fn session_log(&self) -> Option<&Arc<SessionLog>> {
        self.cluster.as_ref().and_then(|c| c.log.as_ref())
    }

    /// Publishes a broker-originated message (`$SYS`) to this node's subscribers only.
    pub fn publish_local(&self, message: Arc<Message>, fanout: &mut Fanout) -> usize {
        if message.retain {
            self.retained.retain(message.clone());
            self.metrics.retained.set(self.retained.len() as i64);
        }
        self.deliver_local(&message, SharedSelection::All, fanout)
            .queued
    }

    /// Adds a subscription of `session` to the router and, for a new one in a cluster,
    /// to the route table (waiting until it is visible cluster-wide). Returns whether it
    /// replaced an existing subscription; `Err` when the route table could not be
    /// updated, in which case the subscription is not kept.
    pub async fn subscribe(
        &self,
        session: &Arc<Session>,
        sub: &Subscription,
    ) -> Result<bool, crate::cluster::routes::RouteError> {
        let existed = self.router.subscribe(session, sub);
        if existed {
            return Ok(true);
        }
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster.add_route(sub).await {
                self.router.unsubscribe(&session.client_id, sub);
                return Err(e);
            }
        }
        Ok(false)
    }

    /// Removes one subscription of `client_id`; true if it existed.
    pub fn unsubscribe(&self, client_id: &str, sub: &Subscription) -> bool {
        let removed = self.router.unsubscribe(client_id, sub);
        if removed {
            if let Some(cluster) = &self.cluster {
                cluster.remove_route(sub);
            }
        }
        removed
    }

    /// Removes every subscription of a session that ended.
    pub fn remove_session_routes(&self, session: &Session) {
        let removed = self.router.remove_session(session);
        if let Some(cluster) = &self.cluster {
            for sub in &removed {
                cluster.remove_route(sub);
            }
        }
    }

    /// Queues the retained messages matching a new subscription, as MQTT 5 Retain
    /// Handling says. Shared subscriptions never receive retained messages (§4.8.2).
    pub fn deliver_retained(&self, session: &Session, sub: &Subscription, existed: bool) {
        let handling = sub.options.retain_handling;
        if sub.share_group.is_some()
            || handling == RetainHandling::DoNotSend
            || (handling == RetainHandling::SendIfNew && existed)
        {
            return;
        }
        let limits = self.queue_limits();
        for message in self.retained.matching(&sub.filter, Instant::now()) {
            let qos = message.qos.min(sub.options.qos);
            let delivery = Delivery {
                message,
                qos,
                retain: true,
                subscription_ids: sub.id.into_iter().collect(),
                span: None,
                durable: None,
                replay: true,
            };
            if session.enqueue(delivery, limits) != Enqueued::Queued {
                self.metrics.dropped(qos, DropReason::queue_full);
            }
        }
    }

    /// Publishes a will now, or after its delay unless the client reconnects to the
    /// same session first (MQTT 5 §3.1.3.2.2). The session's end also triggers it.
    pub fn publish_will(
        self: &Arc<Self>,
        will: Will,
        session: Arc<Session>,
        generation: u64,
        session_expiry: u32,
    ) {
        let delay = will
            .delay
            .min(Duration::from_secs(u64::from(session_expiry)));
        if delay.is_zero() {
            let broker = self.clone();
            tokio::spawn(async move { broker.publish_will_now(will).await });
            return;
        }
        let broker = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                // A clean-start reconnect or expiry ended the session before the delay.
                _ = session.ended_signal.cancelled() => {}
                // On shutdown the will goes out now: the server is closing the connection.
                _ = broker.shutdown.cancelled() => {}
            }
            let reconnected = {
                let st = session.lock();
                st.generation != generation || st.connection.is_some()
            };
            if !reconnected {
                broker.publish_will_now(will).await;
            }
        });
    }

    /// Publishes, now, the will of a connection whose broker died (read from that
    /// broker's session log).
    pub fn publish_orphaned_will(self: &Arc<Self>, will: Will) {
        let broker = self.clone();
        tokio::spawn(async move { broker.publish_will_now(will).await });
    }

    async fn publish_will_now(&self, will: Will) {
        let mut message = will.message;
        let username = will.username.as_deref();
        if !self.acl.check(
            username,
            &message.publisher,
            crate::acl::Action::Publish,
            &message.topic,
        ) {
            tracing::info!(topic = %message.topic, "will message denied by ACL");
            return;
        }
        message.received_at = Instant::now();
        message.properties.expires_at = will
            .expiry_interval
            .map(|secs| message.received_at + Duration::from_secs(u64::from(secs)));
        self.metrics.will_published.inc();
        let mut fanout = Fanout::default();
        let published = self.publish(Arc::new(message), &mut fanout).await;
        fanout.wake();
        // Nobody acknowledges a will; a failure to make it durable is logged where it
        // happened.
        drop(published);
    }

    /// Releases a session when its connection ends: ends it now (expiry 0) or starts
    /// its expiry timer.
    pub fn release_session(self: &Arc<Self>, session: &Arc<Session>, conn_id: u64, expiry: u32) {
        if self.sessions.close(session, conn_id, expiry) {
            self.session_ended(session);
            return;
        }
        let generation = session.lock().generation;
        if let Some(log) = self.session_log().filter(|_| session.is_journaled()) {
            // The expiry may have changed at DISCONNECT. Nobody waits for this record.
            // A normal DISCONNECT discarded the will; an abnormal close published it.
            drop(log.opened(session, None));
        }
        if expiry == u32::MAX || session.lock().connection.is_some() {
            return;
        }
        let broker = self.clone();
        let session = session.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(u64::from(expiry))) => {}
                _ = broker.shutdown.cancelled() => return,
            }
            if broker.sessions.expire(&session, generation) {
                tracing::debug!(client_id = %session.client_id, "session expired");
                broker.session_ended(&session);
            }
        });
    }

    /// Cleans up after a session ended for good: its routes, and (in a cluster) its
    /// owner record.
    fn session_ended(&self, session: &Session) {
        self.remove_session_routes(session);
        self.update_session_gauges();
        if let Some(log) = self.session_log() {
            session.set_journaled(false);
            log.ended(&session.client_id);
        }
        if let Some(cluster) = &self.cluster {
            cluster.session_ended(&session.client_id);
        }
    }

    /// Refreshes the session and subscription gauges.
    pub fn update_session_gauges(&self) {
        self.metrics.sessions.set(self.sessions.len() as i64);
        self.metrics.subscriptions.set(self.router.len() as i64);
    }

    /// The highest QoS this broker accepts.
    pub fn maximum_qos(&self) -> QoS {
        QoS::from_u8(self.config.limits.maximum_qos).unwrap_or(QoS::ExactlyOnce)
    }
}
