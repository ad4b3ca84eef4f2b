//! The session log's writer task: everything queued while the previous append was in
//! flight goes out as one append (group commit), one append at a time, in order.

use std::time::{Duration, Instant};

use journal_client::JournalClient;
use opentelemetry::trace::SpanContext;
use robustmq_proto::journal as journal_pb;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::Code;

use super::{LogError, LogMetrics, APPEND_DEADLINE, MAX_BATCH};
use crate::message_trace::MessageTracer;

/// One record on its way to the journal.
pub(super) struct Write {
    pub record: Vec<u8>,
    pub done: Option<oneshot::Sender<Result<(), LogError>>>,
    /// The span context of a traced message this record is about.
    pub trace: Option<SpanContext>,
}

/// Appends everything queued since the last append as one batch, one batch at a time.
pub(super) async fn write_loop(
    shard: String,
    mut rx: mpsc::UnboundedReceiver<Write>,
    mut addrs: watch::Receiver<Vec<String>>,
    metrics: LogMetrics,
    tracer: MessageTracer,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut journal = JournalClient::new(addrs.borrow_and_update().clone())
        .with_retry_for(Duration::from_secs(2));
    // The shard is created at start-up, while every journal node is up, rather than by
    // the first write, which may come when one is down (a replica it is assigned to
    // cannot be created then).
    let mut created = false;
    let mut backoff = Duration::from_millis(100);
    while !created {
        if addrs.has_changed().unwrap_or(false) || journal.addrs().is_empty() {
            journal.set_addrs(addrs.borrow_and_update().clone());
        }
        match journal.ensure_shard(&shard, 0).await {
            Ok(_) => created = true,
            Err(s) => {
                if backoff == Duration::from_millis(800) {
                    // Said once, a few attempts in: start-up races are normal before that.
                    tracing::warn!(shard, error = %s.message(), journal_nodes = journal.addrs().len(), "durability is on but the session log cannot be created yet; persistent sessions wait for it");
                }
                tracing::debug!(shard, error = %s.message(), "session log shard not created yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    // A new shard elects its leader a moment after it is created.
    tokio::select! {
        leader = journal.find_leader(&shard) => if let Err(s) = leader {
            tracing::warn!(shard, error = %s.message(), "session log has no leader yet");
        },
        _ = stop.cancelled() => return,
    }
    ready.send_replace(true);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = stop.cancelled() => return,
        };
        if n == 0 {
            return;
        }
        let mut waiters = Vec::with_capacity(batch.len());
        let mut traces = Vec::new();
        let records: Vec<journal_pb::Record> = batch
            .drain(..)
            .map(|w| {
                waiters.extend(w.done);
                traces.extend(w.trace);
                journal_pb::Record {
                    payload: w.record,
                    ..Default::default()
                }
            })
            .collect();
        let started = Instant::now();
        let count = records.len() as u64;
        // Traced messages in the batch: the append is a span of the first one's trace
        // (linked to the others'), and the journal's own spans follow through metadata.
        let mut span = traces
            .split_first()
            .map(|(first, rest)| tracer.append_span(first, rest, &shard, records.len()));
        let mut metadata = MetadataMap::new();
        if let Some(span) = &span {
            let mut headers = http::HeaderMap::new();
            common_metrics::propagation::inject_into_headers(&span.context(), &mut headers);
            metadata = MetadataMap::from_headers(headers);
        }
        let result = tokio::select! {
            r = append(&mut journal, &shard, &mut created, records, &metadata, &mut addrs) => r,
            _ = stop.cancelled() => Err("the broker is shutting down".into()),
        };
        if let (Some(span), Err(e)) = (&mut span, &result) {
            span.fail(e.to_string());
        }
        drop(span);
        metrics.append_latency.observe_duration(started);
        match &result {
            Ok(()) => {
                metrics.records.inc_by(count);
            }
            Err(e) => {
                metrics.append_failures.inc();
                tracing::error!(shard, records = count, error = %e, "session log append failed");
            }
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

/// One append of `records`, creating the shard first, retried until the deadline.
/// A retry after an ambiguous failure may write the records twice; replaying them
/// twice changes nothing.
async fn append(
    journal: &mut JournalClient,
    shard: &str,
    created: &mut bool,
    records: Vec<journal_pb::Record>,
    metadata: &MetadataMap,
    addrs: &mut watch::Receiver<Vec<String>>,
) -> Result<(), LogError> {
    let deadline = Instant::now() + APPEND_DEADLINE;
    let mut backoff = Duration::from_millis(50);
    loop {
        if addrs.has_changed().unwrap_or(false) {
            journal.set_addrs(addrs.borrow_and_update().clone());
        }
        let failure = if !*created {
            match journal.ensure_shard(shard, 0).await {
                Ok(_) => {
                    *created = true;
                    continue;
                }
                Err(s) => format!("creating {shard}: {}", s.message()),
            }
        } else {
            match journal.append_with(shard, records.clone(), metadata).await {
                Ok(_) => return Ok(()),
                Err(s) => {
                    if s.code() == Code::NotFound {
                        *created = false;
                    }
                    format!("appending to {shard}: {}", s.message())
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(failure.into());
        }
        tracing::debug!(shard, error = %failure, "session log append failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
