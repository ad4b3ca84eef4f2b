//! One segment: an append-only file of record batches named by its base offset
//! (`00000000000000001234.log`), with its sparse offset and time indexes.
//!
//! Exactly one task (the shard's writer) appends, truncates or seals a segment; any number
//! of readers read it concurrently with positional reads (`pread`). Readers only read
//! bytes below the size they snapshot under the state lock, and the writer publishes a
//! new size only after the bytes are written, so a reader never sees a half-written batch.

pub mod batch;
pub mod index;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use self::batch::{BatchHeader, HEADER_LEN};
use self::index::{OffsetIndex, TimeIndex};
use crate::error::StorageError;

/// What a recovery scan found at the end of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Valid batches kept.
    pub batches: u64,
    /// Bytes cut from the tail (torn write or corruption); 0 for a clean segment.
    pub truncated_bytes: u64,
    /// Why the scan stopped early, when it did.
    pub reason: Option<String>,
}

/// A segment file and its in-memory state.
#[derive(Debug)]
pub struct Segment {
    base_offset: u64,
    dir: PathBuf,
    /// Opened read+write; only the writer task writes (`pwrite` at the end).
    file: File,
    /// Size, offsets and indexes; read-locked by readers for a snapshot, write-locked by
    /// the writer for a few field updates after each write.
    state: RwLock<SegmentState>,
}

#[derive(Debug, Clone)]
struct SegmentState {
    /// Bytes of valid batches (the file is never longer after recovery).
    size: u64,
    /// Offset after the last record in the segment.
    next_offset: u64,
    /// Largest record timestamp, `i64::MIN` while empty.
    max_timestamp: i64,
    /// Wall-clock ms of the first write (or of the oldest record, after a restart): the
    /// clock for rolling by age.
    created_ms: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes appended since the last offset index entry.
    bytes_since_index: u64,
}

impl SegmentState {
    fn empty(base_offset: u64, created_ms: i64) -> Self {
        Self {
            size: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            created_ms,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
        }
    }

    /// Accounts for one batch written at `position`.
    fn add_batch(&mut self, base_offset: u64, position: u64, h: &BatchHeader, interval: u64) {
        let rel = (h.base_offset - base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= interval {
            self.index.push(rel, position as u32);
            self.bytes_since_index = 0;
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
            self.time_index.push(self.max_timestamp, rel);
        } else {
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        }
        self.bytes_since_index += h.total_len() as u64;
        self.size = position + h.total_len() as u64;
        self.next_offset = h.next_offset();
        if self.created_ms == i64::MAX {
            self.created_ms = h.max_timestamp;
        }
    }
}

/// File name of a segment's log, index or time index.
pub fn file_name(base_offset: u64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// The base offset of a `*.log` file name.
pub fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    (stem.len() == 20).then(|| stem.parse().ok())?
}

impl Segment {
    /// Creates a new, empty segment file. A file left with the same name (a segment
    /// whose deletion was interrupted) is emptied: its offsets are about to be rewritten.
    pub fn create(dir: &Path, base_offset: u64, now_ms: i64) -> Result<Self, StorageError> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(Self {
            base_offset,
            dir: dir.to_owned(),
            file,
            state: RwLock::new(SegmentState::empty(base_offset, now_ms)),
        })
    }

    /// Opens a sealed segment (not the last one) whose next offset is known from the
    /// segment after it. Its index files are used when they are sane; otherwise the
    /// segment is scanned, and any damage in it is an error: a hole in the middle of a
    /// log cannot be repaired by truncation.
    pub fn open_sealed(
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        index_interval: u64,
    ) -> Result<Self, StorageError> {
        let segment = Self::open(dir, base_offset)?;
        let log_len = segment.file_len()?;
        let index = std::fs::read(segment.path("index"))
            .ok()
            .and_then(|b| index::OffsetIndex::from_bytes(&b, log_len.max(1)));
        let time_index = std::fs::read(segment.path("timeindex"))
            .ok()
            .and_then(|b| index::TimeIndex::from_bytes(&b));
        match (index, time_index) {
            (Some(index), Some(time_index)) if log_len > 0 && !time_index.is_empty() => {
                let mut state = segment.state_mut();
                state.size = log_len;
                state.next_offset = next_offset;
                state.max_timestamp = time_index.max_timestamp().unwrap_or(i64::MIN);
                state.created_ms = state.max_timestamp;
                state.index = index;
                state.time_index = time_index;
                drop(state);
                Ok(segment)
            }
            _ => {
                let report = segment.scan(index_interval, false)?;
                if let Some(reason) = report.reason {
                    return Err(StorageError::Corrupt {
                        path: segment.path("log"),
                        reason,
                    });
                }
                if segment.next_offset() != next_offset {
                    return Err(StorageError::Corrupt {
                        path: segment.path("log"),
                        reason: format!(
                            "ends at offset {} but the next segment starts at {next_offset}",
                            segment.next_offset()
                        ),
                    });
                }
                segment.write_indexes()?;
                Ok(segment)
            }
        }
    }

    /// Opens the last (active) segment: scans every batch, rebuilds the indexes and
    /// truncates a torn or corrupt tail to the last valid batch (then syncs).
    pub fn recover(
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        let segment = Self::open(dir, base_offset)?;
        let report = segment.scan(index_interval, true)?;
        Ok((segment, report))
    }

    fn open(dir: &Path, base_offset: u64) -> Result<Self, StorageError> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(Self {
            base_offset,
            dir: dir.to_owned(),
            file,
            state: RwLock::new(SegmentState::empty(base_offset, i64::MAX)),
        })
    }

    /// Reads every batch from the start, rebuilding the state. With `repair`, a bad
    /// batch and everything after it is cut off; without, the scan just stops there.
    fn scan(&self, index_interval: u64, repair: bool) -> Result<RecoveryReport, StorageError> {
        let path = self.path("log");
        let file_len = self.file_len()?;
        // The cursor is only used by scans (everything else is positional), and a
        // previous scan left it at the end.
        (&self.file)
            .seek(SeekFrom::Start(0))
            .map_err(|e| StorageError::io(&path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let mut state = SegmentState::empty(self.base_offset, i64::MAX);
        let mut report = RecoveryReport::default();
        let mut header_buf = [0u8; HEADER_LEN];
        let mut body = Vec::new();
        let mut position = 0u64;
        while position < file_len {
            let stop = |reason: String| Some(reason);
            let reason = if file_len - position < HEADER_LEN as u64 {
                stop(format!(
                    "{} trailing bytes, less than a header",
                    file_len - position
                ))
            } else {
                reader
                    .read_exact(&mut header_buf)
                    .map_err(|e| StorageError::io(&path, e))?;
                match batch::parse_header(&header_buf) {
                    Err(e) => stop(e.to_string()),
                    Ok(h) if position + h.total_len() as u64 > file_len => {
                        stop(format!("batch at {position} runs past the end of the file"))
                    }
                    Ok(h) if h.base_offset != state.next_offset => stop(format!(
                        "batch at {position} has base offset {}, expected {}",
                        h.base_offset, state.next_offset
                    )),
                    Ok(h) => {
                        body.clear();
                        body.extend_from_slice(&header_buf);
                        body.resize(h.total_len(), 0);
                        reader
                            .read_exact(&mut body[HEADER_LEN..])
                            .map_err(|e| StorageError::io(&path, e))?;
                        match batch::check_crc(&h, &body) {
                            Err(e) => stop(format!("batch at {position}: {e}")),
                            Ok(()) => {
                                state.add_batch(self.base_offset, position, &h, index_interval);
                                position += h.total_len() as u64;
                                report.batches += 1;
                                None
                            }
                        }
                    }
                }
            };
            if let Some(reason) = reason {
                report.reason = Some(reason);
                break;
            }
        }
        if report.reason.is_some() && repair {
            report.truncated_bytes = file_len - position;
            self.file
                .set_len(position)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| StorageError::io(&path, e))?;
        }
        if state.created_ms == i64::MAX {
            state.created_ms = crate::clock::now_ms();
        }
        *self.state_mut() = state;
        Ok(report)
    }

    fn file_len(&self) -> Result<u64, StorageError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| StorageError::io(&self.path("log"), e))
    }

    /// Path of this segment's `log`, `index` or `timeindex` file.
    pub fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(file_name(self.base_offset, ext))
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> u64 {
        self.state().next_offset
    }

    pub fn size(&self) -> u64 {
        self.state().size
    }

    pub fn max_timestamp(&self) -> i64 {
        self.state().max_timestamp
    }

    pub fn created_ms(&self) -> i64 {
        self.state().created_ms
    }

    pub fn is_empty(&self) -> bool {
        self.state().size == 0
    }

    /// Index entry counts (offset, time), for tests and diagnostics.
    pub fn index_lens(&self) -> (usize, usize) {
        let s = self.state();
        (s.index.len(), s.time_index.len())
    }

    fn state(&self) -> RwLockReadGuard<'_, SegmentState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, SegmentState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes encoded batches at the end (writer only); no fsync.
    pub fn append(
        &self,
        bytes: &[u8],
        headers: &[BatchHeader],
        index_interval: u64,
    ) -> Result<(), StorageError> {
        let position = self.size();
        self.file
            .write_all_at(bytes, position)
            .map_err(|e| StorageError::io(&self.path("log"), e))?;
        let mut state = self.state_mut();
        let mut pos = position;
        for h in headers {
            state.add_batch(self.base_offset, pos, h, index_interval);
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// `fdatasync`: the data and the size, not the timestamps.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.path("log"), e))
    }

    /// Seals the segment: syncs it and writes its index files (synced), so a restart
    /// can load it without a scan.
    pub fn seal(&self) -> Result<(), StorageError> {
        self.sync()?;
        self.write_indexes()
    }

    fn write_indexes(&self) -> Result<(), StorageError> {
        let (index, time_index) = {
            let mut s = self.state_mut();
            // The last batch's maximum, so the sealed segment's max timestamp (retention
            // by age) survives a restart exactly.
            if s.size > 0 {
                let rel = (s.next_offset - 1 - self.base_offset) as u32;
                let max = s.max_timestamp;
                s.time_index.push(max, rel);
            }
            (s.index.to_bytes(), s.time_index.to_bytes())
        };
        for (ext, bytes) in [("index", index), ("timeindex", time_index)] {
            let path = self.path(ext);
            std::fs::write(&path, &bytes)
                .and_then(|()| File::open(&path)?.sync_all())
                .map_err(|e| StorageError::io(&path, e))?;
        }
        Ok(())
    }

    /// Cuts the segment at `offset`, which must be a batch boundary inside it, then
    /// rescans what remains (rare: a follower dropping a divergent tail).
    pub fn truncate_to(&self, offset: u64, index_interval: u64) -> Result<(), StorageError> {
        let position = match self.find_batch(offset)? {
            Some((pos, h)) if h.base_offset == offset => pos,
            None if offset == self.next_offset() => return Ok(()),
            _ => {
                return Err(StorageError::Corrupt {
                    path: self.path("log"),
                    reason: format!("truncation point {offset} is not a batch boundary"),
                })
            }
        };
        let path = self.path("log");
        self.file
            .set_len(position)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StorageError::io(&path, e))?;
        for ext in ["index", "timeindex"] {
            let _ = std::fs::remove_file(self.path(ext));
        }
        let report = self.scan(index_interval, true)?;
        debug_assert!(report.reason.is_none(), "{report:?}");
        Ok(())
    }

    /// Deletes the segment's files (the open handle stays readable until dropped).
    pub fn delete_files(&self) -> Result<(), StorageError> {
        for ext in ["log", "index", "timeindex"] {
            let path = self.path(ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// The batch containing `offset` (position and header), or `None` when `offset` is
    /// at or past the segment's end.
    pub fn find_batch(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let (entry, size, next) = {
            let s = self.state();
            if offset < self.base_offset {
                return Ok(None);
            }
            let rel = (offset - self.base_offset).min(u64::from(u32::MAX)) as u32;
            (s.index.lookup(rel), s.size, s.next_offset)
        };
        if offset >= next {
            return Ok(None);
        }
        let mut position = u64::from(entry.position);
        while position < size {
            let h = self.read_header(position, size)?;
            if offset < h.next_offset() {
                return Ok(Some((position, h)));
            }
            position += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Reads and checks the header at `position` (below `size`).
    pub fn read_header(&self, position: u64, size: u64) -> Result<BatchHeader, StorageError> {
        let mut buf = [0u8; HEADER_LEN];
        if position + HEADER_LEN as u64 > size {
            return Err(self.corrupt(position, "header past the end"));
        }
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(&self.path("log"), e))?;
        batch::parse_header(&buf).map_err(|e| self.corrupt(position, &e.to_string()))
    }

    /// Reads the whole batch at `position` and checks its CRC.
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> Result<Bytes, StorageError> {
        let mut buf = vec![0u8; header.total_len()];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(&self.path("log"), e))?;
        batch::check_crc(header, &buf).map_err(|e| self.corrupt(position, &e.to_string()))?;
        Ok(Bytes::from(buf))
    }

    /// Reads `len` raw bytes at `position` (whole batches, already validated by their
    /// writer; the follower checks every CRC again).
    pub fn read_raw(&self, position: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(&self.path("log"), e))?;
        Ok(buf)
    }

    /// Where a scan for timestamp `ts` may start: (position, first offset there).
    pub fn time_scan_start(&self, ts: i64) -> (u64, u64) {
        let s = self.state();
        let rel = s.time_index.scan_start(ts);
        let entry = s.index.lookup(rel);
        (
            u64::from(entry.position),
            self.base_offset + u64::from(entry.relative_offset),
        )
    }

    fn corrupt(&self, position: u64, reason: &str) -> StorageError {
        StorageError::Corrupt {
            path: self.path("log"),
            reason: format!("at byte {position}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests;
