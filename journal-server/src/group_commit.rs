//! The shard's writer: one task per shard that owns every mutation of its log, and
//! shares one `fdatasync` between all the appends that arrived while the previous one
//! was running (group commit).
//!
//! Appends queue on a channel. The task takes the first, drains whatever else is queued
//! (up to `max_group_bytes`), writes all of it, syncs once, and only then answers every
//! waiter and publishes the new *durable* log end. Under load the queue fills during a
//! sync, so the number of fsyncs per second stays near the disk's fsync rate while the
//! records per fsync grow with concurrency.
//!
//! The file I/O runs on the blocking pool; the log is handed over and back by `Arc`, so
//! no lock is held across the blocking section. Maintenance operations (truncate, reset,
//! retention, a new epoch) go through the same queue, which orders them with appends.
//!
//! After a failed fsync the page cache state is unknown (a retried fsync can report
//! success for data that was dropped), so the writer refuses all further writes: the
//! shard must be reopened, which rescans the segment from disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Durability, StorageConfig};
use crate::error::{JournalError, Result, StorageError};
use crate::log::{Log, RetentionReport};
use crate::metrics::StorageMetrics;
use crate::record::NewRecord;

/// Queue depth of the writer; appenders wait (backpressure) when it is full.
const QUEUE: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T>>;
/// A leader append waiting for its group's write: epoch, records, reply.
type PendingAppend = (u64, Vec<NewRecord>, Reply<(u64, u64)>);

/// One unit of work for the writer.
enum WriteOp {
    /// A leader append, accepted only while the write fence equals `epoch`.
    Append {
        epoch: u64,
        records: Vec<NewRecord>,
        bytes: usize,
        reply: Reply<(u64, u64)>,
    },
    /// Batches fetched from the leader; then records the leader's epoch start when the
    /// log has reached it.
    AppendRaw {
        data: Bytes,
        leader_epoch: u64,
        epoch_start: u64,
        reply: Reply<u64>,
    },
    /// A new leader's first act: records `(epoch, log end)` and opens the fence.
    BeginEpoch {
        epoch: u64,
        reply: Reply<u64>,
    },
    Truncate {
        offset: u64,
        reply: Reply<u64>,
    },
    Reset {
        start: u64,
        reply: Reply<u64>,
    },
    Retention {
        limit: u64,
        reply: Reply<RetentionReport>,
    },
    /// Sync and stop; later calls fail with `ShuttingDown`.
    Close {
        reply: oneshot::Sender<()>,
    },
}

impl WriteOp {
    fn bytes(&self) -> usize {
        match self {
            WriteOp::Append { bytes, .. } => *bytes,
            WriteOp::AppendRaw { data, .. } => data.len(),
            _ => 0,
        }
    }
}

/// Handle to a shard's writer task. Dropping every handle stops the task after it has
/// written and synced what was queued.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<WriteOp>,
    /// The durable log end: everything before it has been written and (in `fsync` mode)
    /// synced. Leaders compute the high watermark from it and ship only durable data.
    durable_end: watch::Receiver<u64>,
}

/// Where leader appends are allowed: the epoch of the current leadership, 0 when this
/// replica is not leader. Checked by the writer right before it writes, so an append
/// queued before a step-down cannot land after it.
pub type WriteFence = Arc<AtomicU64>;

impl Writer {
    /// Starts the writer task of `log`.
    pub fn spawn(
        log: Arc<Log>,
        config: &StorageConfig,
        fence: WriteFence,
        metrics: StorageMetrics,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (end_tx, durable_end) = watch::channel(log.end_offset());
        let task = WriterTask {
            log,
            fence,
            metrics,
            durability: config.durability,
            flush_interval: Duration::from_millis(config.unsafe_flush_interval_ms.max(1)),
            max_group_bytes: config.max_group_bytes,
            end_tx,
            failed: None,
        };
        let handle = tokio::spawn(task.run(rx));
        (Self { tx, durable_end }, handle)
    }

    /// The durable log end now.
    pub fn durable_end(&self) -> u64 {
        *self.durable_end.borrow()
    }

    /// A receiver that wakes when the durable log end moves.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.durable_end.clone()
    }

    async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(op(reply))
            .await
            .map_err(|_| JournalError::ShuttingDown)?;
        rx.await.map_err(|_| JournalError::ShuttingDown)?
    }

    /// Appends one batch as leader of `epoch`; answers `(base_offset, next_offset)` once
    /// durable locally.
    pub async fn append(&self, epoch: u64, records: Vec<NewRecord>) -> Result<(u64, u64)> {
        let bytes = records.iter().map(NewRecord::encoded_len).sum();
        self.call(|reply| WriteOp::Append {
            epoch,
            records,
            bytes,
            reply,
        })
        .await
    }

    /// Appends replicated batches; answers the new durable log end.
    pub async fn append_raw(
        &self,
        data: Bytes,
        leader_epoch: u64,
        epoch_start: u64,
    ) -> Result<u64> {
        self.call(|reply| WriteOp::AppendRaw {
            data,
            leader_epoch,
            epoch_start,
            reply,
        })
        .await
    }

    /// Starts leading `epoch`: answers the epoch's first offset.
    pub async fn begin_epoch(&self, epoch: u64) -> Result<u64> {
        self.call(|reply| WriteOp::BeginEpoch { epoch, reply })
            .await
    }

    /// Cuts the log at `offset`; answers the new log end.
    pub async fn truncate(&self, offset: u64) -> Result<u64> {
        self.call(|reply| WriteOp::Truncate { offset, reply }).await
    }

    /// Empties the log, restarting it at `start`.
    pub async fn reset(&self, start: u64) -> Result<u64> {
        self.call(|reply| WriteOp::Reset { start, reply }).await
    }

    /// Applies retention to segments that end at or before `limit`.
    pub async fn retention(&self, limit: u64) -> Result<RetentionReport> {
        self.call(|reply| WriteOp::Retention { limit, reply }).await
    }

    /// Writes and syncs what is queued, then stops the task.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(WriteOp::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct WriterTask {
    log: Arc<Log>,
    fence: WriteFence,
    metrics: StorageMetrics,
    durability: Durability,
    flush_interval: Duration,
    max_group_bytes: usize,
    end_tx: watch::Sender<u64>,
    /// Set after a failed write or fsync: every later operation fails with it.
    failed: Option<String>,
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<WriteOp>) {
        let unsafe_mode = self.durability == Durability::UnsafeInterval;
        let mut flush = tokio::time::interval(self.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            let first = tokio::select! {
                op = rx.recv() => match op {
                    Some(op) => op,
                    None => break,
                },
                _ = flush.tick(), if unsafe_mode && dirty => {
                    self = self.blocking(|t| { t.sync_and_publish(); }).await.0;
                    dirty = false;
                    continue;
                }
            };
            let mut group = vec![first];
            let mut bytes = group[0].bytes();
            while bytes < self.max_group_bytes && !matches!(group[0], WriteOp::Close { .. }) {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op.bytes();
                        let close = matches!(op, WriteOp::Close { .. });
                        group.push(op);
                        if close {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let close = match group.last() {
                Some(WriteOp::Close { .. }) => group.pop(),
                _ => None,
            };
            let (task, wrote) = self.blocking(move |t| t.execute(group)).await;
            self = task;
            dirty |= wrote && unsafe_mode;
            if let Some(WriteOp::Close { reply }) = close {
                rx.close();
                // Answer what raced in behind the close (the channel is closed now).
                let rest: Vec<WriteOp> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
                self = self
                    .blocking(move |t| {
                        t.execute(rest);
                        t.sync_and_publish();
                    })
                    .await
                    .0;
                let _ = reply.send(());
                return;
            }
        }
        // Every handle is gone: make what was written durable before the task ends.
        let _ = self.blocking(|t| t.sync_and_publish()).await;
    }

    /// Runs `f` on the blocking pool with the task moved in and back out.
    async fn blocking<R: Send + 'static>(
        self,
        f: impl FnOnce(&mut Self) -> R + Send + 'static,
    ) -> (Self, R) {
        tokio::task::spawn_blocking(move || {
            let mut task = self;
            let r = f(&mut task);
            (task, r)
        })
        .await
        .expect("the writer's blocking section does not panic")
    }

    fn fail(&mut self, e: &StorageError) {
        tracing::error!(error = %e, dir = %self.log.dir().display(), "shard writer failed; refusing further writes until the shard is reopened");
        self.failed = Some(e.to_string());
    }

    fn failed_error(&self) -> Option<JournalError> {
        self.failed.as_ref().map(|reason| {
            JournalError::Unavailable(format!(
                "shard storage failed earlier ({reason}); restart the node to recover"
            ))
        })
    }

    fn sync(&mut self) -> std::result::Result<(), StorageError> {
        let start = Instant::now();
        let result = self.log.sync();
        self.metrics.fsync_latency.observe_duration(start);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn sync_and_publish(&mut self) {
        if self.failed.is_none() && self.sync().is_ok() {
            self.end_tx.send_replace(self.log.end_offset());
        }
    }

    /// Executes a group in order; consecutive appends share one write and one sync.
    /// Returns whether anything was written.
    fn execute(&mut self, group: Vec<WriteOp>) -> bool {
        let mut wrote = false;
        let mut appends = Vec::new();
        for op in group {
            match op {
                WriteOp::Append {
                    epoch,
                    records,
                    reply,
                    ..
                } => appends.push((epoch, records, reply)),
                other => {
                    wrote |= self.flush_appends(std::mem::take(&mut appends));
                    wrote |= self.execute_one(other);
                }
            }
        }
        wrote | self.flush_appends(appends)
    }

    fn flush_appends(&mut self, appends: Vec<PendingAppend>) -> bool {
        if appends.is_empty() {
            return false;
        }
        let fence = self.fence.load(Ordering::Acquire);
        let mut accepted = Vec::with_capacity(appends.len());
        for (epoch, records, reply) in appends {
            if let Some(e) = self.failed_error() {
                let _ = reply.send(Err(e));
            } else if epoch != fence || fence == 0 {
                let _ = reply.send(Err(JournalError::Rejected(
                    "leadership changed before the append was written; it was not stored".into(),
                )));
            } else {
                accepted.push((records, reply));
            }
        }
        if accepted.is_empty() {
            return false;
        }
        let requests: Vec<&[NewRecord]> = accepted.iter().map(|(r, _)| r.as_slice()).collect();
        let result = self
            .log
            .append_batches(fence, &requests, crate::clock::now_ms())
            .inspect_err(|e| self.fail(e))
            .and_then(|offsets| match self.durability {
                Durability::Fsync => self.sync().map(|()| offsets),
                Durability::UnsafeInterval => Ok(offsets),
            });
        match result {
            Ok(offsets) => {
                self.end_tx.send_replace(self.log.end_offset());
                for ((records, reply), (base, next)) in accepted.into_iter().zip(offsets) {
                    self.metrics.records_appended.inc_by(records.len() as u64);
                    self.metrics
                        .bytes_appended
                        .inc_by(records.iter().map(NewRecord::encoded_len).sum::<usize>() as u64);
                    let _ = reply.send(Ok((base, next)));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in accepted {
                    let _ = reply.send(Err(JournalError::Unavailable(format!(
                        "append failed: {message}"
                    ))));
                }
            }
        }
        true
    }

    fn execute_one(&mut self, op: WriteOp) -> bool {
        match op {
            WriteOp::Append { .. } => unreachable!("appends are flushed in groups"),
            WriteOp::Close { reply } => {
                // Only reachable for a close that raced in behind the first one.
                let _ = reply.send(());
                false
            }
            WriteOp::AppendRaw {
                data,
                leader_epoch,
                epoch_start,
                reply,
            } => {
                let result = self.append_raw(&data, leader_epoch, epoch_start);
                let _ = reply.send(result);
                !data.is_empty()
            }
            WriteOp::BeginEpoch { epoch, reply } => {
                let result = self.guarded(|log| {
                    let start = log.end_offset();
                    log.assign_epoch(epoch, start)?;
                    Ok(start)
                });
                if result.is_ok() {
                    self.fence.store(epoch, Ordering::Release);
                }
                let _ = reply.send(result);
                false
            }
            WriteOp::Truncate { offset, reply } => {
                let result = self.guarded(|log| log.truncate_to(offset).map(|()| log.end_offset()));
                let _ = reply.send(result);
                true
            }
            WriteOp::Reset { start, reply } => {
                let result = self.guarded(|log| log.reset(start).map(|()| start));
                let _ = reply.send(result);
                true
            }
            WriteOp::Retention { limit, reply } => {
                let result = self.guarded(|log| log.apply_retention(crate::clock::now_ms(), limit));
                let _ = reply.send(result);
                false
            }
        }
    }

    /// Runs a maintenance step on a synced log and publishes the resulting end.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&Log) -> std::result::Result<T, StorageError>,
    ) -> Result<T> {
        if let Some(e) = self.failed_error() {
            return Err(e);
        }
        self.sync()?;
        let result = f(&self.log).inspect_err(|e| self.fail(e));
        self.end_tx.send_replace(self.log.end_offset());
        Ok(result?)
    }

    fn append_raw(&mut self, data: &[u8], leader_epoch: u64, epoch_start: u64) -> Result<u64> {
        if let Some(e) = self.failed_error() {
            return Err(e);
        }
        let now = crate::clock::now_ms();
        // A replicated batch that does not continue the log is the leader's or the
        // network's fault, not this disk's: reject it without failing the writer.
        let headers = self.log.append_raw(data, now)?;
        if !headers.is_empty() && self.durability == Durability::Fsync {
            self.sync()?;
        }
        for h in &headers {
            self.log
                .assign_epoch(h.epoch, h.base_offset)
                .inspect_err(|e| self.fail(e))?;
        }
        let end = self.log.end_offset();
        if end >= epoch_start && leader_epoch > self.log.last_epoch() {
            self.log
                .assign_epoch(leader_epoch, epoch_start)
                .inspect_err(|e| self.fail(e))?;
        }
        self.end_tx.send_replace(end);
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewRecord;

    fn open(
        durability: Durability,
    ) -> (
        tempfile::TempDir,
        Writer,
        WriteFence,
        StorageMetrics,
        Arc<Log>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            durability,
            unsafe_flush_interval_ms: 20,
            ..StorageConfig::default()
        };
        let (log, _) = Log::open(dir.path(), &config).unwrap();
        let log = Arc::new(log);
        let fence: WriteFence = Arc::new(AtomicU64::new(0));
        let metrics = StorageMetrics::default();
        let (writer, _task) = Writer::spawn(log.clone(), &config, fence.clone(), metrics.clone());
        (dir, writer, fence, metrics, log)
    }

    fn fsyncs(metrics: &StorageMetrics) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("fsync", "", metrics.fsync_latency.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("fsync_count "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fence_and_group_commit() {
        let (_dir, writer, fence, metrics, _log) = open(Durability::Fsync);
        let refused = writer.append(1, vec![NewRecord::with_payload("x")]).await;
        assert!(
            matches!(refused, Err(JournalError::Rejected(_))),
            "no leadership, no write"
        );
        assert_eq!(writer.begin_epoch(1).await.unwrap(), 0);
        assert_eq!(fence.load(Ordering::Acquire), 1);
        let appends: Vec<_> = (0..100)
            .map(|i| {
                let w = writer.clone();
                tokio::spawn(async move {
                    w.append(1, vec![NewRecord::with_payload(format!("{i}"))])
                        .await
                })
            })
            .collect();
        let mut bases = Vec::new();
        for a in appends {
            bases.push(a.await.unwrap().unwrap().0);
        }
        bases.sort_unstable();
        assert_eq!(bases, (0..100).collect::<Vec<_>>());
        assert_eq!(writer.durable_end(), 100);
        let n = fsyncs(&metrics);
        assert!(
            (1..100).contains(&n),
            "{n} fsyncs for 100 concurrent appends"
        );
        assert!(
            writer
                .append(2, vec![NewRecord::with_payload("x")])
                .await
                .is_err(),
            "stale epoch"
        );
        writer.close().await;
        assert!(matches!(
            writer.append(1, vec![NewRecord::with_payload("x")]).await,
            Err(JournalError::ShuttingDown)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsafe_interval_acknowledges_before_fsync_and_syncs_later() {
        let (_dir, writer, _fence, metrics, log) = open(Durability::UnsafeInterval);
        writer.begin_epoch(1).await.unwrap();
        let before = fsyncs(&metrics);
        let (base, next) = writer
            .append(1, vec![NewRecord::with_payload("fast")])
            .await
            .unwrap();
        assert_eq!((base, next), (0, 1));
        assert_eq!(log.end_offset(), 1);
        assert_eq!(fsyncs(&metrics), before, "acknowledged without an fsync");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fsyncs(&metrics) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the interval fsync never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
