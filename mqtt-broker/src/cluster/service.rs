//! The broker-to-broker gRPC service: messages forwarded by peers, delivered to this
//! node's subscribers; sessions handed over to the peer a client reconnected to.
//!
//! A request is checked against the sender's fencing epoch first: a process whose
//! registration was replaced by a newer incarnation (it was paused, partitioned, or
//! is a zombie after a restart) is refused with FAILED_PRECONDITION and delivers nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, Stream, StreamExt};

use robustmq_proto::broker as pb;
use robustmq_proto::broker::broker_internal_server::BrokerInternal;
use tonic::{Request, Response, Status, Streaming};

use super::durable::Receipt;
use super::metrics::RefuseReason;
use super::Cluster;
use super::{convert, sessions};
use crate::broker::Broker;
use crate::fanout::Fanout;
use crate::router::SharedSelection;

/// Responses a forward stream buffers before it stops reading batches (backpressure).
const STREAM_WINDOW: usize = 64;

/// The longest `AwaitMirror` waits, whatever the caller asks.
const MAX_MIRROR_WAIT: Duration = Duration::from_secs(5);

/// The answer to a forwarded batch, once its session-log records are durable.
struct Answer {
    response: pb::ForwardResponse,
    receipts: Vec<Receipt>,
}

impl Answer {
    async fn ready(self) -> Result<pb::ForwardResponse, Status> {
        for receipt in self.receipts {
            receipt
                .wait()
                .await
                .map_err(|e| Status::unavailable(format!("session log: {e}")))?;
        }
        Ok(self.response)
    }
}

/// Serves `BrokerInternal` for one broker.
#[derive(Debug, Clone)]
pub struct BrokerInternalService {
    broker: Arc<Broker>,
}

impl BrokerInternalService {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    fn cluster(&self) -> Result<&Arc<Cluster>, Status> {
        self.broker
            .cluster
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("this broker is not clustered"))
    }

    /// The cluster layer, once the caller's epoch passed the fence.
    fn fenced(&self, from_node: u64, epoch: u64) -> Result<&Arc<Cluster>, Status> {
        let cluster = self.cluster()?;
        if let Err(newest) = cluster.fence(from_node, epoch) {
            cluster.metrics().refused(RefuseReason::stale_epoch);
            return Err(Status::failed_precondition(format!(
                "node {from_node} epoch {epoch} is stale (newest seen: {newest})"
            )));
        }
        Ok(cluster)
    }

    /// Delivers one forwarded batch to this node's subscribers, in order. The answer may
    /// go once the receipts (session-log records of persistent sessions) resolve.
    fn deliver_batch(&self, request: pb::ForwardRequest) -> Result<Answer, Status> {
        let cluster = self.fenced(request.from_node, request.epoch)?;
        let metrics = cluster.metrics();
        let now = convert::Clock::now();
        let from = request.from_node;
        let mut messages = Vec::with_capacity(request.messages.len());
        for mut m in request.messages {
            let (traceparent, seq) = (m.traceparent.take(), m.seq);
            match convert::from_proto(m, now) {
                // Into its `Arc` at once: a message is large, and moving it through the
                // batch copied it several times (a sixth of this broker's CPU in a
                // cross-node flood).
                Ok((message, shared)) => {
                    messages.push((seq, (Arc::new(message), shared, traceparent)))
                }
                Err(e) => {
                    metrics.refused(RefuseReason::invalid);
                    return Err(Status::invalid_argument(e.to_string()));
                }
            }
        }
        metrics.forward_received.inc_by(messages.len() as u64);
        let mut fanout = Fanout::default();
        let mut delivered = 0;
        let mut receipts = Vec::new();
        let repeated = cluster.delivered.deliver_new(
            from,
            request.stream_id,
            messages,
            |(mut message, shared, traceparent)| {
                // Open while the message is routed here (its deliveries are its
                // children). Only delivered messages get one: a resent message that
                // was delivered already is not received twice.
                let _span = traceparent.as_deref().and_then(|tp| {
                    let message = Arc::get_mut(&mut message)?;
                    self.broker.tracer.receive_span(tp, message, from)
                });
                let local = self.broker.deliver_local(
                    &message,
                    SharedSelection::Only(&shared),
                    &mut fanout,
                );
                delivered += u32::from(local.queued > 0);
                receipts.extend(local.receipt);
            },
        );
        fanout.wake();
        metrics.forward_repeated.inc_by(repeated as u64);
        Ok(Answer {
            response: pb::ForwardResponse { delivered },
            receipts,
        })
    }
}

#[tonic::async_trait]
impl BrokerInternal for BrokerInternalService {
    type ForwardStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::ForwardResponse, Status>> + Send>>;

    async fn forward_stream(
        &self,
        request: Request<Streaming<pb::ForwardRequest>>,
    ) -> Result<Response<Self::ForwardStreamStream>, Status> {
        self.cluster()?;
        let mut inbound = request.into_inner();
        let (mut tx, rx) = futures::channel::mpsc::channel(STREAM_WINDOW);
        let (mut answers, mut to_answer) =
            futures::channel::mpsc::channel::<Result<Answer, Status>>(STREAM_WINDOW);
        let this = self.clone();
        // One task per stream delivers batches in the order they arrive; a second answers
        // them in the same order, each once its session-log records are written, so that
        // delivering goes on while the journal writes.
        tokio::spawn(async move {
            loop {
                let batch = match inbound.message().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(error = %status.message(), "forward stream from a peer ended");
                        return;
                    }
                };
                let answer = this.deliver_batch(batch);
                let failed = answer.is_err();
                if answers.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(answer) = to_answer.next().await {
                let answer = match answer {
                    Ok(answer) => answer.ready().await,
                    Err(status) => Err(status),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn await_mirror(
        &self,
        request: Request<pb::AwaitMirrorRequest>,
    ) -> Result<Response<pb::AwaitMirrorResponse>, Status> {
        let request = request.into_inner();
        let cluster = self.cluster()?;
        let mirror = pb::await_mirror_request::Mirror::try_from(request.mirror)
            .map_err(|_| Status::invalid_argument("unknown mirror"))?;
        let wait = Duration::from_millis(u64::from(request.timeout_ms)).min(MAX_MIRROR_WAIT);
        let mut applied = cluster.mirror_revision(mirror);
        let _ = tokio::time::timeout(wait, applied.wait_for(|at| *at >= request.revision)).await;
        let applied = *applied.borrow();
        Ok(Response::new(pb::AwaitMirrorResponse { applied }))
    }

    async fn take_session(
        &self,
        request: Request<pb::TakeSessionRequest>,
    ) -> Result<Response<pb::TakeSessionResponse>, Status> {
        let request = request.into_inner();
        let cluster = self.fenced(request.from_node, request.epoch)?;
        // A session being adopted here is handed over once it is installed.
        cluster
            .adopting
            .wait(&request.client_id, Duration::from_secs(10))
            .await;
        let Some(session) = self
            .broker
            .sessions
            .take(&request.client_id, request.clean_start)
        else {
            return Ok(Response::new(pb::TakeSessionResponse { session: None }));
        };
        self.broker.remove_session_routes(&session);
        self.broker.update_session_gauges();
        if let Some(log) = self.broker.session_log() {
            // The new owner journals what it takes in its own log.
            session.set_journaled(false);
            log.ended(&request.client_id);
        }
        tracing::debug!(client_id = %request.client_id, to = request.from_node, "session handed over");
        let state = (!request.clean_start).then(|| sessions::export(&session, Instant::now()));
        Ok(Response::new(pb::TakeSessionResponse { session: state }))
    }
}
