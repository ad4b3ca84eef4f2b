//! The log of one shard replica: its segments in offset order, the active (last) one
//! taking writes, plus the leader epoch cache.
//!
//! Mutations (append, sync, roll, truncate, reset, retention) come from the shard's single
//! writer task (`group_commit`), one at a time; reads come from anywhere, concurrently,
//! through a snapshot of the segment list. Nothing here decides what is committed: the
//! caller passes the offset readers may not pass (the high watermark).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::config::StorageConfig;
use crate::epochs::{EpochCache, EpochEntry};
use crate::error::StorageError;
use crate::fsutil::sync_dir;
use crate::record::NewRecord;
use crate::segment::batch::{self, BatchHeader};
use crate::segment::{self, RecoveryReport, Segment};

mod read;

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments: usize,
    pub bytes: u64,
}

/// The segments and epoch cache of one shard replica.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: StorageConfig,
    /// Offset order; never empty. Readers clone the `Arc`s and read without the lock.
    segments: RwLock<Vec<Arc<Segment>>>,
    epochs: Mutex<EpochCache>,
}

impl Log {
    /// Opens (or creates) the log in `dir`: loads sealed segments, scans the last one and
    /// truncates a torn or corrupt tail. The report says what the scan found.
    pub fn open(
        dir: &Path,
        config: &StorageConfig,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            if let Some(base) = entry.file_name().to_str().and_then(segment::parse_log_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let interval = config.index_interval_bytes;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut report = RecoveryReport::default();
        if bases.is_empty() {
            segments.push(Arc::new(Segment::create(dir, 0, crate::clock::now_ms())?));
            sync_dir(dir)?;
        } else {
            for (i, &base) in bases.iter().enumerate() {
                if let Some(&next) = bases.get(i + 1) {
                    segments.push(Arc::new(Segment::open_sealed(dir, base, next, interval)?));
                } else {
                    let (active, r) = Segment::recover(dir, base, interval)?;
                    segments.push(Arc::new(active));
                    report = r;
                }
            }
        }
        let log_end = segments.last().map_or(0, |s| s.next_offset());
        let epochs = match EpochCache::load(dir)? {
            Some(mut cache) => {
                // Entries past the recovered end describe data that never became durable.
                cache.truncate_from(log_end + 1)?;
                cache
            }
            None => EpochCache::create(dir, rebuild_epochs(&segments)?)?,
        };
        let log = Self {
            dir: dir.to_owned(),
            config: config.clone(),
            segments: RwLock::new(segments),
            epochs: Mutex::new(epochs),
        };
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.last().expect("a log always has a segment").clone()
    }

    fn epochs(&self) -> MutexGuard<'_, EpochCache> {
        self.epochs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// First stored offset.
    pub fn start_offset(&self) -> u64 {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.first().map_or(0, |s| s.base_offset())
    }

    /// Offset after the last stored record (log end offset).
    pub fn end_offset(&self) -> u64 {
        self.active().next_offset()
    }

    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Epoch of the latest epoch boundary (0: none).
    pub fn last_epoch(&self) -> u64 {
        self.epochs().last_epoch()
    }

    /// See [`EpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: u64) -> (u64, u64) {
        let log_end = self.end_offset();
        self.epochs().end_offset_for(epoch, log_end)
    }

    /// Start offset of the latest epoch.
    pub fn last_epoch_start(&self) -> Option<u64> {
        self.epochs().last_start()
    }

    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs().entries().to_vec()
    }

    // ---- writer-only operations -------------------------------------------------------

    /// Records that `epoch` starts at `start` (a new leader's first act, or a follower
    /// catching up to it).
    pub fn assign_epoch(&self, epoch: u64, start: u64) -> Result<bool, StorageError> {
        self.epochs().assign(epoch, start)
    }

    /// Encodes one batch per request and writes them, rolling segments as needed. No
    /// fsync. Returns each request's `(base_offset, next_offset)`.
    pub fn append_batches(
        &self,
        epoch: u64,
        requests: &[&[NewRecord]],
        now_ms: i64,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let mut offsets = Vec::with_capacity(requests.len());
        let mut buf = Vec::new();
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut next = self.end_offset();
        for records in requests {
            let start = buf.len();
            let h = batch::encode(&mut buf, next, epoch, records, now_ms);
            if start > 0 && self.overflows(buf.len() as u64, now_ms) {
                // Write what precedes this batch into the current segment first.
                self.active()
                    .append(&buf[..start], &headers, self.config.index_interval_bytes)?;
                buf.drain(..start);
                headers.clear();
            }
            if self.should_roll(buf.len() as u64, now_ms) {
                self.roll(now_ms)?;
            }
            headers.push(h);
            offsets.push((h.base_offset, h.next_offset()));
            next = h.next_offset();
        }
        if !buf.is_empty() {
            self.active()
                .append(&buf, &headers, self.config.index_interval_bytes)?;
        }
        Ok(offsets)
    }

    /// Writes batches copied from the leader (already CRC-checked by the caller) after
    /// checking they continue this log. No fsync. Returns the new log end and the
    /// batches' headers.
    pub fn append_raw(&self, data: &[u8], now_ms: i64) -> Result<Vec<BatchHeader>, StorageError> {
        let mut headers = Vec::new();
        let mut expected = self.end_offset();
        for item in batch::split_batches(data) {
            let (h, _) = item.map_err(|e| self.corrupt(format!("replicated batch: {e}")))?;
            if h.base_offset != expected {
                return Err(self.corrupt(format!(
                    "replicated batch starts at {}, log ends at {expected}",
                    h.base_offset
                )));
            }
            expected = h.next_offset();
            headers.push(h);
        }
        let mut pos = 0usize;
        let mut run_start = 0usize;
        let mut run_headers: Vec<BatchHeader> = Vec::new();
        for h in &headers {
            let len = h.total_len();
            if !run_headers.is_empty() && self.overflows((pos + len - run_start) as u64, now_ms) {
                self.active().append(
                    &data[run_start..pos],
                    &run_headers,
                    self.config.index_interval_bytes,
                )?;
                run_headers.clear();
                run_start = pos;
            }
            if run_headers.is_empty() && self.should_roll(len as u64, now_ms) {
                self.roll(now_ms)?;
            }
            run_headers.push(*h);
            pos += len;
        }
        if !run_headers.is_empty() {
            self.active().append(
                &data[run_start..pos],
                &run_headers,
                self.config.index_interval_bytes,
            )?;
        }
        Ok(headers)
    }

    /// Whether `incoming` more bytes should go to a new segment.
    fn should_roll(&self, incoming: u64, now_ms: i64) -> bool {
        !self.active().is_empty() && self.overflows(incoming, now_ms)
    }

    /// Whether the active segment plus `incoming` bytes is past the size or age limit.
    fn overflows(&self, incoming: u64, now_ms: i64) -> bool {
        let active = self.active();
        let too_big = active.size() + incoming > self.config.segment_bytes;
        let max_age = self.config.segment_max_age_secs as i64 * 1000;
        let too_old = max_age > 0 && now_ms - active.created_ms() >= max_age;
        too_big || too_old
    }

    /// Seals the active segment and starts a new one at the log end.
    pub fn roll(&self, now_ms: i64) -> Result<(), StorageError> {
        let active = self.active();
        active.seal()?;
        let next = Arc::new(Segment::create(&self.dir, active.next_offset(), now_ms)?);
        sync_dir(&self.dir)?;
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(next);
        Ok(())
    }

    /// `fdatasync` of the active segment (rolled segments were synced when sealed).
    pub fn sync(&self) -> Result<(), StorageError> {
        self.active().sync()
    }

    /// Cuts the log at `offset` (a batch boundary): segments after it are deleted, the one
    /// holding it is truncated, epochs from there on are forgotten.
    pub fn truncate_to(&self, offset: u64) -> Result<(), StorageError> {
        if offset >= self.end_offset() {
            return Ok(());
        }
        if offset < self.start_offset() {
            return self.reset(offset);
        }
        let removed = {
            let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
            let keep = segments.partition_point(|s| s.base_offset() <= offset);
            segments.split_off(keep)
        };
        for s in &removed {
            s.delete_files()?;
        }
        self.active()
            .truncate_to(offset, self.config.index_interval_bytes)?;
        sync_dir(&self.dir)?;
        self.epochs().truncate_from(offset)
    }

    /// Throws the whole log away and starts empty at `start` (a follower far behind a
    /// leader whose retention removed what it needs).
    pub fn reset(&self, start: u64) -> Result<(), StorageError> {
        let fresh = Arc::new(Segment::create(&self.dir, start, crate::clock::now_ms())?);
        let old = std::mem::replace(
            &mut *self.segments.write().unwrap_or_else(|p| p.into_inner()),
            vec![fresh],
        );
        for s in old.iter().filter(|s| s.base_offset() != start) {
            s.delete_files()?;
        }
        sync_dir(&self.dir)?;
        self.epochs().clear()
    }

    /// Deletes whole sealed segments beyond the size or age limit. Only segments that
    /// end at or before `limit` (the high watermark) are eligible; the active segment
    /// never is.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        limit: u64,
    ) -> Result<RetentionReport, StorageError> {
        let segments = self.snapshot();
        let total: u64 = segments.iter().map(|s| s.size()).sum();
        let max_age = self.config.retention_secs as i64 * 1000;
        let max_bytes = self.config.retention_bytes;
        let mut report = RetentionReport::default();
        for seg in &segments[..segments.len() - 1] {
            if seg.next_offset() > limit {
                break;
            }
            let expired = max_age > 0 && seg.max_timestamp() < now_ms - max_age;
            let oversize = max_bytes > 0 && total - report.bytes - seg.size() >= max_bytes;
            if !(expired || oversize) {
                break;
            }
            report.segments += 1;
            report.bytes += seg.size();
        }
        if report.segments > 0 {
            let removed: Vec<_> = {
                let mut list = self.segments.write().unwrap_or_else(|p| p.into_inner());
                list.drain(..report.segments).collect()
            };
            for s in &removed {
                s.delete_files()?;
            }
            sync_dir(&self.dir)?;
        }
        Ok(report)
    }

    /// Syncs the active segment on shutdown.
    pub fn close(&self) -> Result<(), StorageError> {
        self.sync()
    }

    pub(crate) fn corrupt(&self, reason: String) -> StorageError {
        StorageError::Corrupt {
            path: self.dir.clone(),
            reason,
        }
    }
}

/// Epoch boundaries read from the batch headers of every segment (when the checkpoint
/// file is missing).
fn rebuild_epochs(segments: &[Arc<Segment>]) -> Result<Vec<EpochEntry>, StorageError> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for seg in segments {
        let size = seg.size();
        let mut pos = 0;
        while pos < size {
            let h = seg.read_header(pos, size)?;
            if entries.last().is_none_or(|e| e.epoch < h.epoch) {
                entries.push(EpochEntry {
                    epoch: h.epoch,
                    start_offset: h.base_offset,
                });
            }
            pos += h.total_len() as u64;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
