//! Durable persistent sessions: each broker writes what its persistent sessions would
//! lose in a crash to its own journal shard, `mqtt-sessions-{node}`, so that another
//! broker can rebuild a session whose owner died.
//!
//! What is written ([`pb::SessionLogRecord`]):
//! * `Opened`: a persistent session's subscriptions and expiry, on CONNECT, SUBSCRIBE
//!   and UNSUBSCRIBE (SUBACK waits for it).
//! * `Enqueued`: a QoS 1/2 message queued for persistent sessions here, before the
//!   publisher gets its PUBACK/PUBREC (or before a forwarding peer gets its answer, which
//!   its publisher's acknowledgement waits for).
//! * `Done`: a subscriber acknowledged a delivery (PUBACK, or PUBREC for QoS 2), or it
//!   expired: it needs no recovery.
//! * `Ended`: the session ended here or moved to another broker.
//!
//! One writer task per broker shares each journal append between everything queued
//! while the previous append was in flight (group commit), in order, so a `Done` never
//! lands before its `Enqueued`. A broker that claims a session whose owner is gone
//! replays the owner's shard ([`replay`]), takes the session over and writes `Ended`
//! there, and journals what it took in its own shard.

pub mod replay;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common_metrics::LatencyHistogram;
use journal_client::JournalClient;
use opentelemetry::trace::SpanContext;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::{Registry, Unit};
use prost::Message as _;
use robustmq_proto::broker as pb;
use robustmq_proto::journal as journal_pb;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::convert;
use crate::message::{Message, Will};
use crate::message_trace::{MessageTracer, MessageTracingConfig};
use crate::session::Session;

/// Records of one broker's session log go to this shard, suffixed with the node id.
pub const SHARD_PREFIX: &str = "mqtt-sessions-";

/// Records per journal append at most.
const MAX_BATCH: usize = 4096;

/// How long an append is retried (journal leader elections, a node restarting) before
/// its waiters are told it failed.
const APPEND_DEADLINE: Duration = Duration::from_secs(10);

/// The shard of `node`'s session log.
pub fn shard_of(node: u64) -> String {
    format!("{SHARD_PREFIX}{node}")
}

/// One `Enqueued` record: unique within a shard across the broker's incarnations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DurableId {
    pub epoch: u64,
    pub id: u64,
}

/// Why something could not be made durable.
pub type LogError = Arc<str>;

/// How long a [`Receipt`] is waited for: longer than one append's own deadline, since
/// the writer may retry it.
const RECEIPT_DEADLINE: Duration = Duration::from_secs(APPEND_DEADLINE.as_secs() * 2);
const RECEIPT_STOPPED: &str = "the session log stopped";
/// Why a [`Receipt`] that was not answered in time failed.
pub const RECEIPT_LATE: &str = "the session log did not answer in time";

/// Resolves once a write is in the journal (fsynced on every in-sync replica).
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<Result<(), LogError>>);

impl Receipt {
    /// A receipt nobody has answered yet, and the sender that answers it.
    #[cfg(test)]
    pub fn unanswered() -> (Self, oneshot::Sender<Result<(), LogError>>) {
        let (tx, rx) = oneshot::channel();
        (Self(rx), tx)
    }

    /// Waits until the write is durable or failed. Bounded even while the writer is
    /// still creating the shard (the journal unreachable since start-up).
    pub async fn wait(self) -> Result<(), LogError> {
        match tokio::time::timeout(RECEIPT_DEADLINE, self.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RECEIPT_STOPPED.into()),
            Err(_) => Err(RECEIPT_LATE.into()),
        }
    }
}

/// What a publisher's PUBACK/PUBREC waits for: the message's session-log record on this
/// broker, and the answer of each peer it was forwarded to (which answers once its own
/// record is written).
#[derive(Debug, Default)]
pub struct Pending {
    journal: Option<Receipt>,
    peers: Vec<oneshot::Receiver<()>>,
}

impl Pending {
    /// Waits for `receipt`, if any.
    pub fn journal(receipt: Option<Receipt>) -> Self {
        Self {
            journal: receipt,
            peers: Vec::new(),
        }
    }

    /// Adds a wait for a peer's answer: send on the returned sender once it answered;
    /// dropping it unsent fails the wait.
    pub fn peer(&mut self) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        self.peers.push(rx);
        tx
    }

    /// True when there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.journal.is_none() && self.peers.is_empty()
    }

    /// True while the journal has not answered: only that wait has a deadline
    /// ([`Pending::JOURNAL_DEADLINE`]); a peer's answer is bounded by the forwarder's
    /// own retry deadline.
    pub fn waits_for_journal(&self) -> bool {
        self.journal.is_some()
    }

    /// How long the journal's answer may take, counted from the write: bounded even
    /// while the writer is still creating the shard (the journal unreachable since
    /// start-up).
    pub const JOURNAL_DEADLINE: Duration = RECEIPT_DEADLINE;

    /// Ready once everything is durable, `Err` when something could not be. Registers
    /// `cx` only with the first part still waiting, so the parts answering one by one
    /// wake the caller once, when the last one has.
    pub fn poll_durable(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LogError>> {
        if let Some(receipt) = &mut self.journal {
            match Pin::new(&mut receipt.0).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Ok(()))) => self.journal = None,
                Poll::Ready(Ok(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(RECEIPT_STOPPED.into())),
            }
        }
        while let Some(peer) = self.peers.last_mut() {
            match Pin::new(peer).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    self.peers.pop();
                }
                Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err("a peer broker did not accept the message".into()))
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What the session log measures.
#[derive(Debug, Clone, Default)]
pub struct LogMetrics {
    /// One journal append of the session log, as the broker sees it (retries included).
    pub append_latency: LatencyHistogram,
    pub records: Counter,
    pub append_failures: Counter,
    pub recovered_sessions: Counter,
    pub adopted_sessions: Counter,
}

impl LogMetrics {
    /// Registers under `registry` (which carries the `robustmq` prefix) as
    /// `session_log_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("session_log");
        r.register_with_unit(
            "append",
            "Time of one journal append of the session log as the broker sees it, retries included",
            Unit::Seconds,
            m.append_latency.clone(),
        );
        r.register(
            "records",
            "Records written to this broker's session log",
            m.records.clone(),
        );
        r.register(
            "append_failures",
            "Session-log appends that failed after retrying (their publishers were refused)",
            m.append_failures.clone(),
        );
        r.register(
            "recovered_sessions",
            "Sessions rebuilt from the session log of a broker that is gone",
            m.recovered_sessions.clone(),
        );
        r.register(
            "adopted_sessions",
            "Sessions of brokers that are gone this broker adopted before their clients came back",
            m.adopted_sessions.clone(),
        );
        m
    }
}

/// This broker's session log, and the reader of other brokers' logs.
pub struct SessionLog {
    node_id: u64,
    epoch: Arc<AtomicU64>,
    next_id: AtomicU64,
    tx: mpsc::UnboundedSender<writer::Write>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<writer::Write>>>,
    /// The journal nodes' client addresses, from their registrations.
    addrs: watch::Sender<Vec<String>>,
    /// True once the shard exists and has a leader (the broker is ready then).
    ready: watch::Sender<bool>,
    /// Replayed shards by node id, read on as recoveries need them.
    replays: tokio::sync::Mutex<HashMap<u64, replay::Replay>>,
    metrics: LogMetrics,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl SessionLog {
    /// The log of node `node_id`; nothing is written until [`SessionLog::start`].
    pub fn new(node_id: u64, epoch: Arc<AtomicU64>, metrics: LogMetrics) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            node_id,
            epoch,
            next_id: AtomicU64::new(1),
            tx,
            rx: Mutex::new(Some(rx)),
            addrs: watch::channel(Vec::new()).0,
            ready: watch::channel(false).0,
            replays: Default::default(),
            metrics,
        }
    }

    /// Starts the writer task; `addrs` are the journal nodes' addresses as they change.
    pub fn start(&self, stop: CancellationToken, tracing: MessageTracingConfig) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(writer::write_loop(
                shard_of(self.node_id),
                rx,
                self.addrs.subscribe(),
                self.metrics.clone(),
                MessageTracer::new(tracing),
                self.ready.clone(),
                stop,
            ));
        }
    }

    /// Waits (at most `limit`) until the shard exists and has a leader; false on timeout.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(limit, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sets the journal nodes' client addresses.
    pub fn set_journal_nodes(&self, addrs: Vec<String>) {
        self.addrs.send_if_modified(|current| {
            let changed = *current != addrs;
            *current = addrs;
            changed
        });
    }

    pub fn metrics(&self) -> &LogMetrics {
        &self.metrics
    }

    /// A fresh id for an `Enqueued` record.
    pub fn next_id(&self) -> DurableId {
        DurableId {
            epoch: self.epoch.load(Ordering::Acquire),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn push(
        &self,
        kind: pb::session_log_record::Kind,
        done: Option<oneshot::Sender<Result<(), LogError>>>,
        trace: Option<SpanContext>,
    ) {
        let record = pb::SessionLogRecord { kind: Some(kind) }.encode_to_vec();
        let write = writer::Write {
            record,
            done,
            trace,
        };
        if let Err(mpsc::error::SendError(w)) = self.tx.send(write) {
            if let Some(done) = w.done {
                let _ = done.send(Err("the session log stopped".into()));
            }
        }
    }

    /// Writes a record; the receipt resolves once it is durable.
    pub fn write(&self, kind: pb::session_log_record::Kind) -> Receipt {
        self.write_traced(kind, None)
    }

    fn write_traced(
        &self,
        kind: pb::session_log_record::Kind,
        trace: Option<SpanContext>,
    ) -> Receipt {
        let (tx, rx) = oneshot::channel();
        self.push(kind, Some(tx), trace);
        Receipt(rx)
    }

    /// Writes a record nobody waits for (its failure is logged and counted).
    pub fn write_detached(&self, kind: pb::session_log_record::Kind) {
        self.push(kind, None, None);
    }

    /// The `Enqueued` record of `message` queued under `id` for `targets`.
    pub fn enqueued(
        &self,
        id: DurableId,
        message: &Message,
        targets: Vec<pb::SessionTarget>,
    ) -> Receipt {
        let trace = message.trace.as_deref().cloned();
        let message = convert::to_proto(message, &[], convert::Clock::now());
        self.write_traced(
            pb::session_log_record::Kind::Enqueued(Box::new(pb::SessionEnqueued {
                epoch: id.epoch,
                id: id.id,
                message: Some(message),
                targets,
            })),
            trace,
        )
    }

    /// Records that `client_id` needs delivery `id` no more.
    pub fn done(&self, client_id: &str, id: DurableId) {
        self.write_detached(pb::session_log_record::Kind::Done(pb::SessionDone {
            client_id: client_id.to_owned(),
            epoch: id.epoch,
            ids: vec![id.id],
        }));
    }

    /// The `Opened` record of `session` as it is now, with the will of its connection.
    pub fn opened(&self, session: &Session, will: Option<&Will>) -> Receipt {
        let st = session.lock();
        let record = pb::SessionOpened {
            client_id: session.client_id.to_string(),
            subscriptions: st
                .subscriptions
                .iter()
                .map(|(key, sub)| super::sessions::export_subscription(key, sub))
                .collect(),
            expiry_interval: st.expiry_interval,
            will: will.map(|w| Box::new(will_to_proto(w))),
        };
        drop(st);
        self.write(pb::session_log_record::Kind::Opened(record))
    }

    /// Records that `client_id`'s session left this broker.
    pub fn ended(&self, client_id: &str) {
        self.write_detached(ended(client_id));
    }

    /// Rebuilds `client_id`'s session from the log of `node` (a broker incarnation that
    /// is gone). `None` when the log holds no session for it. Once the session is
    /// claimed, [`SessionLog::release`] marks it ended there.
    pub async fn recover(
        &self,
        node: u64,
        client_id: &str,
    ) -> Result<Option<pb::SessionState>, String> {
        let shard = shard_of(node);
        let addrs = self.addrs.borrow().clone();
        let mut journal = JournalClient::new(addrs);
        // A leader elected a moment ago (the journal restarted too) may not have
        // committed the tail of its log yet; what is not committed cannot be read, and
        // a session missing its last records would come back incomplete.
        let deadline = Instant::now() + APPEND_DEADLINE;
        let mut info = match journal.leader_info(&shard).await {
            Ok(info) => info,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(format!("reading {shard}: {}", s.message())),
        };
        let target = info.log_end_offset;
        while info.end_offset < target {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{shard} has committed up to {} of {target} records; try again",
                    info.end_offset
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            info = journal
                .leader_info(&shard)
                .await
                .map_err(|s| format!("reading {shard}: {}", s.message()))?;
        }
        let mut replays = self.replays.lock().await;
        let replay = replays.entry(node).or_default();
        loop {
            let response = match journal.read(&shard, replay.next_offset, 0).await {
                Ok(response) => response,
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) => return Err(format!("reading {shard}: {}", s.message())),
            };
            if response.records.is_empty() {
                break;
            }
            if response.start_offset > replay.next_offset {
                tracing::warn!(
                    shard,
                    from = replay.next_offset,
                    to = response.start_offset,
                    "session log records were removed by retention before they were replayed"
                );
            }
            for r in response.records {
                match pb::SessionLogRecord::decode(&r.payload[..]) {
                    Ok(record) => replay.apply(r.offset, r.timestamp_ms, record),
                    Err(e) => {
                        tracing::warn!(shard, offset = r.offset, error = %e, "undecodable session log record skipped");
                        replay.next_offset = replay.next_offset.max(r.offset + 1);
                    }
                }
            }
            replay.next_offset = replay.next_offset.max(response.next_offset);
        }
        Ok(replay.session(client_id, unix_ms()))
    }

    /// Marks `client_id`'s session ended in the log of `node` (it was recovered here).
    pub async fn release(&self, node: u64, client_id: &str) -> Result<(), String> {
        if let Some(replay) = self.replays.lock().await.get_mut(&node) {
            replay.forget(client_id);
        }
        let shard = shard_of(node);
        let record = pb::SessionLogRecord {
            kind: Some(ended(client_id)),
        };
        let ended = journal_pb::Record {
            payload: record.encode_to_vec(),
            ..Default::default()
        };
        let addrs = self.addrs.borrow().clone();
        JournalClient::new(addrs)
            .append(&shard, vec![ended])
            .await
            .map_err(|s| format!("marking the session ended in {shard}: {}", s.message()))?;
        self.metrics.recovered_sessions.inc();
        Ok(())
    }
}

/// A connection's will as the session log keeps it.
pub fn will_to_proto(will: &Will) -> pb::SessionWill {
    pb::SessionWill {
        message: Some(convert::to_proto(&will.message, &[], convert::Clock::now())),
        delay_secs: u32::try_from(will.delay.as_secs()).unwrap_or(u32::MAX),
        expiry_interval: will.expiry_interval,
        username: will.username.as_ref().map(ToString::to_string),
    }
}

/// A will read back from the session log; `None` when it is malformed.
pub fn will_from_proto(will: pb::SessionWill) -> Option<Will> {
    let (message, _) = convert::from_proto(will.message?, convert::Clock::now()).ok()?;
    Some(Will {
        message,
        delay: Duration::from_secs(u64::from(will.delay_secs)),
        expiry_interval: will.expiry_interval,
        username: will.username.map(Into::into),
    })
}

fn ended(client_id: &str) -> pb::session_log_record::Kind {
    pb::session_log_record::Kind::Ended(pb::SessionEnded {
        client_id: client_id.to_owned(),
    })
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
