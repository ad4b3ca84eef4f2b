//! One shard replica on this node: its log, its writer task and its replication.
//! This is the API the gRPC service calls: validated appends, committed reads, tailing.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{JournalConfig, NodeId};
use crate::error::{JournalError, Result};
use crate::group_commit::Writer;
use crate::log::{Log, RetentionReport};
use crate::metrics::JournalMetrics;
use crate::record::{NewRecord, Record};
use crate::replication::peers::Peers;
use crate::replication::{self, Replica, ReplicaStatus, ShardView};

/// File holding a shard's identity in its directory.
pub const META_FILE: &str = "shard.toml";

/// What `shard.toml` records: the shard's name and replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMeta {
    pub name: String,
    pub replicas: Vec<NodeId>,
}

/// A shard's state for `ShardInfo` / `ListShards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    pub name: String,
    pub start_offset: u64,
    /// Committed end (high watermark) known here.
    pub end_offset: u64,
    pub log_end_offset: u64,
    pub size_bytes: u64,
    pub segments: usize,
    pub replicas: Vec<ReplicaStatus>,
    pub leader: Option<NodeId>,
    pub leader_addr: String,
    pub epoch: u64,
}

/// Records read, and where the log stands.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Vec<Record>,
    pub next_offset: u64,
    pub end_offset: u64,
    pub start_offset: u64,
}

/// One open shard replica.
#[derive(Debug)]
pub struct Shard {
    meta: ShardMeta,
    dir: PathBuf,
    config: Arc<JournalConfig>,
    log: Arc<Log>,
    writer: Writer,
    replica: Arc<Replica>,
    metrics: JournalMetrics,
    /// Stops the replication driver.
    stop: CancellationToken,
    /// The writer and driver tasks, awaited on close.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shard {
    /// Opens (recovering) the shard replica in `dir` and starts its writer and
    /// replication tasks.
    pub fn open(
        meta: ShardMeta,
        dir: PathBuf,
        config: Arc<JournalConfig>,
        peers: Arc<Peers>,
        metrics: JournalMetrics,
    ) -> Result<Arc<Self>> {
        let (log, report) = Log::open(&dir, &config.storage)?;
        if let Some(reason) = &report.reason {
            tracing::warn!(shard = %meta.name, truncated_bytes = report.truncated_bytes, %reason, "recovered a torn or corrupt segment tail");
            metrics
                .recovered_truncated_bytes
                .inc_by(report.truncated_bytes);
        }
        tracing::info!(shard = %meta.name, start = log.start_offset(), end = log.end_offset(), segments = log.segment_count(), replicas = ?meta.replicas, "shard opened");
        let log = Arc::new(log);
        let fence = Arc::new(AtomicU64::new(0));
        let (writer, writer_task) = Writer::spawn(
            log.clone(),
            &config.storage,
            fence.clone(),
            metrics.storage.clone(),
        );
        let replica = Arc::new(Replica::new(
            meta.name.clone(),
            config.node_id,
            meta.replicas.clone(),
            config.replication.clone(),
            log.clone(),
            writer.clone(),
            fence,
            peers,
            metrics.replication.clone(),
        )?);
        let stop = CancellationToken::new();
        let driver = tokio::spawn(replication::run_driver(replica.clone(), stop.clone()));
        Ok(Arc::new(Self {
            meta,
            dir,
            config,
            log,
            writer,
            replica,
            metrics,
            stop,
            tasks: Mutex::new(vec![driver, writer_task]),
        }))
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Cancelled when the shard is closed (deleted or the node stops): ends tails.
    pub fn closed(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Checks and appends a batch as leader; answers `(base_offset, last_offset)` once
    /// the in-sync replicas have it.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<(u64, u64)> {
        let limits = &self.config.storage;
        if records.is_empty() {
            return Err(JournalError::InvalidArgument(
                "an append needs at least one record".into(),
            ));
        }
        let mut total = 0usize;
        for (i, r) in records.iter().enumerate() {
            let size = r.encoded_len();
            if size > limits.max_record_bytes {
                return Err(JournalError::InvalidArgument(format!(
                    "record {i} is {size} bytes encoded; the limit is {} (storage.max_record_bytes)",
                    limits.max_record_bytes
                )));
            }
            if r.timestamp_ms < 0 {
                return Err(JournalError::InvalidArgument(format!(
                    "record {i} has a negative timestamp"
                )));
            }
            if r.headers.len() > usize::from(u16::MAX)
                || r.headers
                    .iter()
                    .any(|(k, _)| k.len() > usize::from(u16::MAX))
            {
                return Err(JournalError::InvalidArgument(format!(
                    "record {i}: at most 65535 headers, names at most 65535 bytes"
                )));
            }
            total += size;
        }
        if total > limits.max_append_bytes {
            return Err(JournalError::InvalidArgument(format!(
                "append of {total} bytes encoded; the limit is {} (storage.max_append_bytes)",
                limits.max_append_bytes
            )));
        }
        let (base, next) = self.replica.append(records).await?;
        Ok((base, next - 1))
    }

    /// Committed records from `offset`. Reading at the committed end returns nothing;
    /// before the first stored offset or past the log end is `OutOfRange`.
    pub async fn read(
        &self,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let hw = self.replica.view().hw;
        let start = self.log.start_offset();
        let log_end = self.writer.durable_end();
        self.check_offset(offset, start, log_end, hw)?;
        let records = if offset >= hw {
            Vec::new()
        } else {
            let log = self.log.clone();
            tokio::task::spawn_blocking(move || log.read(offset, max_records, max_bytes, hw))
                .await
                .map_err(|e| JournalError::Unavailable(format!("read task failed: {e}")))??
        };
        let next_offset = records.last().map_or(offset, |r| r.offset + 1);
        self.metrics.records_read.inc_by(records.len() as u64);
        self.metrics
            .bytes_read
            .inc_by(records.iter().map(Record::size).sum::<usize>() as u64);
        Ok(ReadResult {
            records,
            next_offset,
            end_offset: hw,
            start_offset: start,
        })
    }

    fn check_offset(&self, offset: u64, start: u64, log_end: u64, hw: u64) -> Result<()> {
        if offset < start {
            return Err(JournalError::OutOfRange(format!(
                "offset {offset} of shard {:?} is before its first stored offset {start} (retention)",
                self.meta.name
            )));
        }
        if offset > log_end.max(hw) {
            return Err(JournalError::OutOfRange(format!(
                "offset {offset} of shard {:?} is past its end {}",
                self.meta.name,
                log_end.max(hw)
            )));
        }
        Ok(())
    }

    /// Validates a subscription start; then tail with [`Shard::read`] and
    /// [`Shard::watch`].
    pub fn check_subscribe(&self, offset: u64) -> Result<()> {
        let hw = self.replica.view().hw;
        self.check_offset(
            offset,
            self.log.start_offset(),
            self.writer.durable_end(),
            hw,
        )
    }

    /// A receiver that wakes when the shard's view changes (a commit, a new leader).
    pub fn watch(&self) -> watch::Receiver<ShardView> {
        self.replica.subscribe()
    }

    /// The first committed offset whose timestamp is `>= ts`, or the committed end.
    pub async fn lookup_offset(&self, ts: i64) -> Result<u64> {
        let hw = self.replica.view().hw;
        let log = self.log.clone();
        let found = tokio::task::spawn_blocking(move || log.offset_for_timestamp(ts, hw))
            .await
            .map_err(|e| JournalError::Unavailable(format!("lookup task failed: {e}")))??;
        Ok(found.max(self.log.start_offset()))
    }

    /// Where the shard stands, as this node knows it.
    pub fn status(&self) -> ShardStatus {
        let view = self.replica.view();
        let leader_addr = view
            .leader
            .map(|id| self.replica.node_addr(id))
            .unwrap_or_default();
        ShardStatus {
            name: self.meta.name.clone(),
            start_offset: self.log.start_offset(),
            end_offset: view.hw,
            log_end_offset: self.writer.durable_end(),
            size_bytes: self.log.size_bytes(),
            segments: self.log.segment_count(),
            replicas: self.replica.statuses(),
            leader: view.leader,
            leader_addr,
            epoch: view.epoch,
        }
    }

    /// Deletes segments past the retention limits (committed data only).
    pub async fn apply_retention(&self) -> Result<RetentionReport> {
        let hw = self.replica.view().hw;
        let report = self.writer.retention(hw).await?;
        if report.segments > 0 {
            tracing::info!(shard = %self.meta.name, segments = report.segments, bytes = report.bytes, start = self.log.start_offset(), "retention deleted segments");
        }
        Ok(report)
    }

    /// Stops replication and the writer (which syncs what it wrote), then returns.
    pub async fn close(&self) {
        self.stop.cancel();
        self.writer.close().await;
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        if let Err(e) = self.log.close() {
            tracing::error!(shard = %self.meta.name, error = %e, "closing the log failed");
        }
    }
}
