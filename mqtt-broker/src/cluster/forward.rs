//! Forwarding messages to peer brokers: one bounded queue and one sender task per peer.
//!
//! The sender batches whatever is queued (up to `forward_batch`) into one request of a
//! long-lived ordered stream to the peer, with several batches in flight, so a busy route
//! costs neither an RPC nor a round trip per message. Backpressure: a QoS 1/2 publisher
//! waits for room in the queue (its PUBACK waits with it); QoS 0 beyond the queue is
//! dropped, counted and logged. When the stream breaks, unanswered QoS 1/2 messages are
//! sent again on a new one while the peer stays registered, up to a deadline, and the
//! peer delivers each once; what still fails is counted and logged, never silently lost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common_metrics::grpc::{GrpcClientLayer, GrpcClientService};
use futures::SinkExt;
use mqtt_codec::QoS;
use placement_client::Member;
use robustmq_proto::broker as pb;
use robustmq_proto::broker::broker_internal_client::BrokerInternalClient;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use super::convert;
use super::metrics::{ClusterMetrics, ForwardDrop};
use super::wire::{ForwardBatch, ForwardCodec, WireMessage};
use crate::message::Message;
use crate::message_trace;
use crate::router::SharedKey;

/// How long QoS 1/2 messages are retried on a failing stream before they are given up.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// HTTP/2 receive windows of the broker-to-broker server: room for several whole
/// forward batches in flight, per stream and per connection (the default is 64 KiB).
pub const FORWARD_STREAM_WINDOW: u32 = 4 << 20;
pub const FORWARD_CONNECTION_WINDOW: u32 = 8 << 20;

/// One message on its way to one peer.
#[derive(Debug)]
pub struct Outgoing {
    pub message: Arc<Message>,
    /// The shared groups the peer delivers this message for.
    pub shared: Vec<SharedKey>,
    /// The `mqtt.forward` span of a traced message: open until the peer answered.
    pub span: Option<message_trace::MessageSpan>,
    /// Its number on the way to this peer, given when it is first sent (0 until then)
    /// and kept when it is resent, so the peer delivers it once.
    pub seq: u64,
    /// Told when the peer answered the batch (durability on, QoS 1/2): the publisher's
    /// acknowledgement waits for it. Dropped unsent when the message does not get there.
    pub ack: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What every sender needs to know about this node.
#[derive(Debug, Clone)]
pub struct SenderContext {
    pub node_id: u64,
    /// This node's current fencing epoch (changes when it re-registers).
    pub epoch: Arc<AtomicU64>,
    pub batch: usize,
    pub queue: usize,
    /// How long a QoS 0 message waits for room in a full queue before it is dropped.
    pub qos0_wait: Duration,
    pub metrics: ClusterMetrics,
    pub layer: GrpcClientLayer,
}

struct Peer {
    epoch: u64,
    addr: String,
    /// For unary calls other than the forward stream (session hand-over).
    client: Client,
    tx: mpsc::Sender<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The runtime the forward senders and their connections run on: a thread of its own,
/// so that the operating system shares the CPU between forwarding and the client
/// connections. On the broker's runtime the senders were one task among every
/// publisher's, and under a flood of publishes each batch waited behind all of them.
pub struct ForwardRuntime(Option<tokio::runtime::Runtime>);

impl ForwardRuntime {
    pub fn new() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("forward")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("set until dropped").handle()
    }
}

impl Drop for ForwardRuntime {
    fn drop(&mut self) {
        // Dropping a runtime may block, which is not allowed inside another runtime.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The peers this node forwards to, kept in step with the registered brokers.
pub struct Peers {
    context: SenderContext,
    peers: RwLock<HashMap<u64, Peer>>,
    runtime: ForwardRuntime,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    pub fn new(context: SenderContext, runtime: ForwardRuntime) -> Self {
        Self {
            context,
            peers: RwLock::new(HashMap::new()),
            runtime,
        }
    }

    /// Follows the registered brokers: a new node (or a new incarnation of one) gets a
    /// fresh sender; a node that left loses its sender and whatever was queued for it.
    pub fn update(&self, members: &BTreeMap<u64, Member>) {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        peers.retain(|id, peer| {
            let keep = members
                .get(id)
                .is_some_and(|m| m.epoch == peer.epoch && m.info.grpc == peer.addr);
            if !keep {
                tracing::info!(peer = id, addr = %peer.addr, "peer broker left or restarted");
            }
            keep
        });
        for (id, member) in members {
            if *id == self.context.node_id || peers.contains_key(id) {
                continue;
            }
            match self.spawn(*id, member) {
                Ok(peer) => {
                    tracing::info!(peer = id, addr = %member.info.grpc, epoch = member.epoch, "peer broker joined");
                    peers.insert(*id, peer);
                }
                Err(e) => {
                    tracing::error!(peer = id, addr = %member.info.grpc, error = %e, "bad peer address")
                }
            }
        }
        self.context.metrics.peers.set(peers.len() as i64);
    }

    fn spawn(&self, id: u64, member: &Member) -> Result<Peer, tonic::transport::Error> {
        let addr = member.info.grpc.clone();
        let uri = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        // The channel's worker and connection are spawned where it is created.
        let _on_forward_runtime = self.runtime.handle().enter();
        let channel = Endpoint::from_shared(uri)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        let service = self.context.layer.layer(channel);
        let client = BrokerInternalClient::new(service.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let stream_client = tonic::client::Grpc::new(service)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(self.context.queue);
        let task =
            self.runtime
                .handle()
                .spawn(send_loop(id, stream_client, rx, self.context.clone()));
        Ok(Peer {
            epoch: member.epoch,
            addr,
            client,
            tx,
            task,
        })
    }

    /// A client of peer `node`, if it is registered with `epoch` (the incarnation that
    /// owns what the caller is after).
    pub fn client(&self, node: u64, epoch: u64) -> Option<Client> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers
            .get(&node)
            .filter(|p| p.epoch == epoch)
            .map(|p| p.client.clone())
    }

    /// A client of every registered peer.
    pub fn clients(&self) -> Vec<(u64, Client)> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers
            .iter()
            .map(|(id, p)| (*id, p.client.clone()))
            .collect()
    }

    /// Queues `out` for peer `node` if its queue has room. When it is full, QoS 0 is
    /// dropped (counted) unless it may wait ([`SenderContext::qos0_wait`]); what may
    /// wait is handed back, for [`Peers::send_when_room`]. `Ok(false)` when the message
    /// will not reach the peer.
    pub fn try_send(&self, node: u64, out: Outgoing) -> Result<bool, Outgoing> {
        let qos = out.message.qos;
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        let Some(peer) = peers.get(&node) else {
            self.context.metrics.dropped(qos, ForwardDrop::peer_gone);
            return Ok(false);
        };
        match peer.tx.try_send(out) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(out))
                if qos != QoS::AtMostOnce || !self.context.qos0_wait.is_zero() =>
            {
                self.context.metrics.forward_waited.inc();
                Err(out)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_full(node);
                Ok(false)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.context.metrics.dropped(qos, ForwardDrop::peer_gone);
                Ok(false)
            }
        }
    }

    /// Queues a message that [`Peers::try_send`] handed back, once its queue has room:
    /// QoS 1/2 waits as long as it takes, QoS 0 up to [`SenderContext::qos0_wait`] and
    /// is then dropped (counted). False when the message will not reach the peer.
    pub async fn send_when_room(&self, node: u64, out: Outgoing) -> bool {
        let qos = out.message.qos;
        let tx = {
            let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
            peers.get(&node).map(|p| p.tx.clone())
        };
        let Some(tx) = tx else {
            self.context.metrics.dropped(qos, ForwardDrop::peer_gone);
            return false;
        };
        let sent = if qos == QoS::AtMostOnce {
            match tx.send_timeout(out, self.context.qos0_wait).await {
                Ok(()) => true,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    self.dropped_full(node);
                    return false;
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
            }
        } else {
            tx.send(out).await.is_ok()
        };
        if !sent {
            self.context.metrics.dropped(qos, ForwardDrop::peer_gone);
        }
        sent
    }

    /// Counts and logs a QoS 0 message dropped at peer `node`'s full queue.
    fn dropped_full(&self, node: u64) {
        self.context
            .metrics
            .dropped(QoS::AtMostOnce, ForwardDrop::queue_full);
        tracing::debug!(peer = node, "forward queue full: QoS 0 message dropped");
    }
}

/// A traced, measured client of a peer's `BrokerInternal` service.
pub type Client = BrokerInternalClient<GrpcClientService<Channel>>;

/// The same for the forward stream, which the generated client cannot serve: its
/// requests are [`ForwardBatch`]es, encoded from the messages without a
/// `pb::ForwardRequest` in between (the peer decodes them as one).
type StreamClient = tonic::client::Grpc<GrpcClientService<Channel>>;

/// Opens a forward stream to the peer, sending `requests`.
async fn forward_stream(
    client: &mut StreamClient,
    requests: futures::channel::mpsc::Receiver<ForwardBatch>,
) -> Result<tonic::Streaming<pb::ForwardResponse>, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("service was not ready: {e}")))?;
    // The service's name as the generated server knows it, so the two cannot drift.
    let service = robustmq_proto::broker::broker_internal_server::SERVICE_NAME;
    let mut request = tonic::Request::new(requests);
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new(service, "ForwardStream"));
    let path = http::uri::PathAndQuery::try_from(format!("/{service}/ForwardStream"))
        .map_err(|e| tonic::Status::internal(format!("forward stream path: {e}")))?;
    client
        .streaming(request, path, ForwardCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Batches a sender keeps in flight on its stream before it waits for answers.
const WINDOW: usize = 32;

/// Sends batches to one peer over one ordered stream until its queue closes (the peer
/// left): up to [`WINDOW`] batches in flight, answered in order. When the stream breaks,
/// the QoS 1/2 messages of unanswered batches are sent again on a new stream, with the
/// numbers they had, until [`RETRY_FOR`] passes; the peer skips those it delivered
/// already ([`super::replay`]). QoS 0 ones are counted as dropped.
async fn send_loop(
    peer: u64,
    mut client: StreamClient,
    mut rx: mpsc::Receiver<Outgoing>,
    cx: SenderContext,
) {
    let mut resend: Vec<Outgoing> = Vec::new();
    // Messages are numbered here, the one consumer of the queue, so that numbers follow
    // the order they are sent in.
    let stream_id = rand::random::<u64>();
    let mut last_seq = 0;
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        let (mut requests, stream) = futures::channel::mpsc::channel(WINDOW);
        let mut pending: VecDeque<(Vec<Outgoing>, Instant)> = VecDeque::new();
        let broken = match forward_stream(&mut client, stream).await {
            Err(status) => status,
            Ok(mut responses) => {
                let mut batch = std::mem::take(&mut resend);
                loop {
                    if !batch.is_empty() {
                        for out in batch.iter_mut().filter(|o| o.seq == 0) {
                            last_seq += 1;
                            out.seq = last_seq;
                        }
                        let request = cx.request(stream_id, &batch);
                        if requests.send(request).await.is_err() {
                            pending.push_back((batch, Instant::now()));
                            break tonic::Status::unavailable("forward stream closed");
                        }
                        pending.push_back((std::mem::take(&mut batch), Instant::now()));
                    }
                    tokio::select! {
                        answer = responses.message() => match answer {
                            Ok(Some(_)) => {
                                let Some((done, sent)) = pending.pop_front() else {
                                    break tonic::Status::internal("an answer for no batch");
                                };
                                cx.metrics.forward_batch_latency.observe_duration(sent);
                                for out in done {
                                    cx.metrics.forwarded(out.message.qos);
                                    if let Some(ack) = out.ack {
                                        let _ = ack.send(());
                                    }
                                }
                                failing_since = None;
                                backoff = Duration::from_millis(20);
                            }
                            Ok(None) => break tonic::Status::unavailable("forward stream ended"),
                            Err(status) => break status,
                        },
                        n = rx.recv_many(&mut batch, cx.batch), if pending.len() < WINDOW => {
                            if n == 0 {
                                return; // the peer left: nobody is waiting for these
                            }
                        }
                    }
                }
            }
        };
        // Unanswered batches may or may not have been delivered.
        let stale = broken.code() == tonic::Code::FailedPrecondition;
        let started = *failing_since.get_or_insert_with(Instant::now);
        let give_up = stale || started.elapsed() > RETRY_FOR;
        let mut lost = 0usize;
        for out in pending.into_iter().flat_map(|(batch, _)| batch) {
            if out.message.qos != QoS::AtMostOnce && !give_up {
                resend.push(out);
            } else {
                lost += 1;
                let reason = if stale {
                    ForwardDrop::stale_epoch
                } else {
                    ForwardDrop::peer_failed
                };
                cx.metrics.dropped(out.message.qos, reason);
            }
        }
        if give_up {
            for out in resend.drain(..) {
                lost += 1;
                cx.metrics
                    .dropped(out.message.qos, ForwardDrop::peer_failed);
            }
        }
        if stale {
            tracing::error!(peer, error = %broken.message(), lost, "peer refused this node's epoch: stale incarnation");
        } else {
            tracing::warn!(peer, error = %broken.message(), lost, resending = resend.len(), "forward stream to a peer broke");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

impl SenderContext {
    /// The request carrying `batch`, stamped with this node's current epoch.
    fn request(&self, stream_id: u64, batch: &[Outgoing]) -> ForwardBatch {
        let now = convert::Clock::now();
        let messages = batch
            .iter()
            .map(|o| {
                WireMessage::new(
                    o.message.clone(),
                    o.shared.clone(),
                    o.span.as_ref().and_then(message_trace::traceparent),
                    o.seq,
                    now,
                )
            })
            .collect();
        ForwardBatch::new(
            self.node_id,
            self.epoch.load(Ordering::Acquire),
            stream_id,
            messages,
        )
    }
}
