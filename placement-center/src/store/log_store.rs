//! The Raft log and Raft's own state (vote, committed, last purged) in RocksDB.
//!
//! Appends are durable before openraft hears of them: each append is one `WriteBatch`
//! written with `sync`, on a blocking thread, and `LogFlushed` is called only after it.
//! openraft hands over all the entries it has ready in one call, so concurrent writes
//! share one fsync.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::raft::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::store::metrics::StorageMetrics;
use crate::store::{cf, io_err, CF_LOG, CF_RAFT};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The log store; clones share the database (a clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    metrics: StorageMetrics,
    /// The committed index as last saved, for the `committed_index` gauge.
    committed: Arc<AtomicU64>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn synced() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

impl LogStore {
    pub fn new(db: Arc<DB>, metrics: StorageMetrics) -> crate::Result<Self> {
        cf(&db, CF_LOG)?;
        let store = LogStore {
            db,
            metrics,
            committed: Arc::new(AtomicU64::new(0)),
        };
        if let Some(c) = store.get_meta::<LogId>(COMMITTED).ok().flatten() {
            store.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// The committed index last saved by openraft.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let cf = cf(&self.db, CF_RAFT).map_err(|e| io_err(StorageIOError::read, e))?;
        let Some(bytes) = self
            .db
            .get_cf(cf, key)
            .map_err(|e| io_err(StorageIOError::read, e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_err(StorageIOError::read, e))
    }

    /// Writes one Raft-state key; `sync` for the vote (losing it could double-vote a term).
    async fn put_meta<T: Serialize>(
        &self,
        key: &'static [u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(|e| io_err(StorageIOError::write, e))?;
        let db = self.db.clone();
        let write = move || -> Result<(), rocksdb::Error> {
            let cf = db
                .cf_handle(CF_RAFT)
                .expect("raft column family opened at start");
            let opts = if sync {
                synced()
            } else {
                WriteOptions::default()
            };
            db.put_cf_opt(cf, key, bytes, &opts)
        };
        let res = if sync {
            tokio::task::spawn_blocking(write)
                .await
                .map_err(|e| io_err(StorageIOError::write, e))?
        } else {
            write()
        };
        res.map_err(|e| io_err(StorageIOError::write, e))
    }

    /// Deletes log entries in `[from, to)` durably.
    async fn delete_range(
        &self,
        from: u64,
        to: u64,
        extra: Option<(&'static [u8], Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), rocksdb::Error> {
            let log = db
                .cf_handle(CF_LOG)
                .expect("log column family opened at start");
            let mut batch = WriteBatch::default();
            if let Some((key, value)) = extra {
                let raft = db
                    .cf_handle(CF_RAFT)
                    .expect("raft column family opened at start");
                batch.put_cf(raft, key, value);
            }
            batch.delete_range_cf(log, index_key(from), index_key(to));
            if to == u64::MAX {
                batch.delete_cf(log, index_key(u64::MAX));
            }
            db.write_opt(batch, &synced())
        })
        .await
        .map_err(|e| io_err(StorageIOError::write_logs, e))?
        .map_err(|e| io_err(StorageIOError::write_logs, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + openraft::OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start_time = Instant::now();
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => *i + 1,
            Bound::Unbounded => 0,
        };
        let log = cf(&self.db, CF_LOG).map_err(|e| io_err(StorageIOError::read_logs, e))?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            log,
            IteratorMode::From(&index_key(start), Direction::Forward),
        ) {
            let (k, v) = item.map_err(|e| io_err(StorageIOError::read_logs, e))?;
            let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            if !range.contains(&index) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|e| io_err(StorageIOError::read_logs, e))?);
        }
        self.metrics.log_read.observe_duration(start_time);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = cf(&self.db, CF_LOG).map_err(|e| io_err(StorageIOError::read_logs, e))?;
        let last = match self.db.iterator_cf(log, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item.map_err(|e| io_err(StorageIOError::read_logs, e))?;
                let entry: Entry =
                    serde_json::from_slice(&v).map_err(|e| io_err(StorageIOError::read_logs, e))?;
                Some(entry.log_id)
            }
            None => None,
        };
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let start = Instant::now();
        self.put_meta(VOTE, vote, true).await?;
        self.metrics.vote_save.observe_duration(start);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: after a crash openraft re-derives the commit index from a quorum;
        // the saved value only lets a restarted node apply sooner.
        self.put_meta(COMMITTED, &committed, false).await?;
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let start = Instant::now();
        let mut batch = WriteBatch::default();
        {
            let log = cf(&self.db, CF_LOG).map_err(|e| io_err(StorageIOError::write_logs, e))?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry)
                    .map_err(|e| io_err(StorageIOError::write_logs, e))?;
                batch.put_cf(log, index_key(entry.log_id.index), bytes);
            }
        }
        let db = self.db.clone();
        let res = tokio::task::spawn_blocking(move || db.write_opt(batch, &synced()))
            .await
            .map_err(|e| io_err(StorageIOError::write_logs, e))?;
        self.metrics.log_append.observe_duration(start);
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_err(StorageIOError::write_logs, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let start = Instant::now();
        self.delete_range(log_id.index, u64::MAX, None).await?;
        self.metrics.log_truncate.observe_duration(start);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let start = Instant::now();
        // The purge mark and the deletion land together, so the log state never claims
        // entries that are gone or hides entries that remain.
        let mark =
            serde_json::to_vec(&Some(log_id)).map_err(|e| io_err(StorageIOError::write, e))?;
        self.delete_range(0, log_id.index + 1, Some((LAST_PURGED, mark)))
            .await?;
        self.metrics.log_purge.observe_duration(start);
        Ok(())
    }
}
