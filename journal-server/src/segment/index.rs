//! Sparse per-segment indexes: offset → file position, and timestamp → offset.
//!
//! An entry is added every `index_interval_bytes` of log (and for the first batch of a
//! segment), always at a batch start. A lookup finds the nearest entry at or before the
//! target and the reader scans forward from there, so the index only has to be *correct*,
//! not complete: a truncated index file still works, it just makes scans longer.
//!
//! Both live in memory while a segment is open and are written to `<base>.index` /
//! `<base>.timeindex` when the segment is sealed (rolled), so a restart loads sealed
//! segments without scanning them. The active segment's indexes are rebuilt by the
//! recovery scan that has to read it anyway.

use bytes::{Buf, BufMut};

/// Offset index entry: (offset - segment base, byte position of the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Sparse offset → position index of one segment.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    const ENTRY_LEN: usize = 8;

    /// Adds an entry; entries must grow in both offset and position.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|l| l.relative_offset < relative_offset && l.position < position));
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// The last entry at or before `relative_offset`; position 0 when there is none.
    pub fn lookup(&self, relative_offset: u32) -> OffsetEntry {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        match i {
            0 => OffsetEntry {
                relative_offset: 0,
                position: 0,
            },
            i => self.entries[i - 1],
        }
    }

    /// Drops entries at or past `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file form: 8 bytes per entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * Self::ENTRY_LEN);
        for e in &self.entries {
            out.put_u32_le(e.relative_offset);
            out.put_u32_le(e.position);
        }
        out
    }

    /// Parses a file, rejecting anything that is not strictly increasing or that points
    /// past `log_len` (a torn or stale index is rebuilt, never trusted).
    pub fn from_bytes(mut bytes: &[u8], log_len: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(Self::ENTRY_LEN) {
            return None;
        }
        let mut index = OffsetIndex::default();
        while bytes.has_remaining() {
            let relative_offset = bytes.get_u32_le();
            let position = bytes.get_u32_le();
            let ordered = index
                .entries
                .last()
                .is_none_or(|l| l.relative_offset < relative_offset && l.position < position);
            if !ordered || u64::from(position) >= log_len {
                return None;
            }
            index.push(relative_offset, position);
        }
        Some(index)
    }
}

/// Time index entry: the largest timestamp seen up to and including the batch that
/// starts at `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

/// Sparse timestamp → offset index of one segment. Timestamps in entries only grow.
#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    const ENTRY_LEN: usize = 12;

    /// Records that every record up to the batch at `relative_offset` has a timestamp
    /// `<= max_so_far`; ignored unless it raises the maximum.
    pub fn push(&mut self, max_so_far: i64, relative_offset: u32) {
        match self.entries.last_mut() {
            Some(l) if l.timestamp_ms >= max_so_far => {}
            Some(l) if l.relative_offset == relative_offset => l.timestamp_ms = max_so_far,
            _ => self.entries.push(TimeEntry {
                timestamp_ms: max_so_far,
                relative_offset,
            }),
        }
    }

    /// Where a scan for the first record with timestamp `>= ts` may start: the batch of
    /// the last entry whose maximum is still `< ts` (everything up to it is older), or
    /// the segment start.
    pub fn scan_start(&self, ts: i64) -> u32 {
        let i = self.entries.partition_point(|e| e.timestamp_ms < ts);
        match i {
            0 => 0,
            i => self.entries[i - 1].relative_offset,
        }
    }

    /// The largest timestamp indexed.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|e| e.timestamp_ms)
    }

    /// Drops entries for batches at or past `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file form: 12 bytes per entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * Self::ENTRY_LEN);
        for e in &self.entries {
            out.put_i64_le(e.timestamp_ms);
            out.put_u32_le(e.relative_offset);
        }
        out
    }

    /// Parses a file; `None` when it is torn or out of order.
    pub fn from_bytes(mut bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(Self::ENTRY_LEN) {
            return None;
        }
        let mut index = TimeIndex::default();
        while bytes.has_remaining() {
            let timestamp_ms = bytes.get_i64_le();
            let relative_offset = bytes.get_u32_le();
            let ordered = index.entries.last().is_none_or(|l| {
                l.timestamp_ms < timestamp_ms && l.relative_offset <= relative_offset
            });
            if !ordered {
                return None;
            }
            index.entries.push(TimeEntry {
                timestamp_ms,
                relative_offset,
            });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_nearest_entry_at_or_before() {
        let mut index = OffsetIndex::default();
        assert_eq!(index.lookup(5).position, 0);
        index.push(0, 0);
        index.push(10, 4096);
        index.push(25, 8200);
        assert_eq!(index.lookup(0).position, 0);
        assert_eq!(index.lookup(9).position, 0);
        assert_eq!(index.lookup(10).position, 4096);
        assert_eq!(index.lookup(24).relative_offset, 10);
        assert_eq!(index.lookup(1_000).position, 8200);
        index.truncate_to_position(4096);
        assert_eq!(index.len(), 1);
        assert_eq!(index.lookup(30).position, 0);
    }

    #[test]
    fn offset_index_file_round_trip_and_validation() {
        let mut index = OffsetIndex::default();
        index.push(0, 0);
        index.push(3, 100);
        let bytes = index.to_bytes();
        let loaded = OffsetIndex::from_bytes(&bytes, 200).unwrap();
        assert_eq!(loaded.lookup(4).position, 100);
        assert!(OffsetIndex::from_bytes(&bytes[..7], 200).is_none(), "torn");
        assert!(
            OffsetIndex::from_bytes(&bytes, 100).is_none(),
            "points past the log"
        );
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 8]);
        assert!(
            OffsetIndex::from_bytes(&zeros, 200).is_none(),
            "zero-filled tail"
        );
    }

    #[test]
    fn time_index_scan_start() {
        let mut index = TimeIndex::default();
        assert_eq!(index.scan_start(5), 0);
        index.push(100, 0);
        index.push(90, 5); // not a new maximum: ignored
        index.push(200, 10);
        index.push(300, 20);
        assert_eq!(index.len(), 3);
        assert_eq!(index.scan_start(50), 0);
        assert_eq!(index.scan_start(100), 0);
        assert_eq!(index.scan_start(150), 0);
        assert_eq!(index.scan_start(201), 10);
        assert_eq!(index.scan_start(301), 20);
        assert_eq!(index.max_timestamp(), Some(300));
        let loaded = TimeIndex::from_bytes(&index.to_bytes()).unwrap();
        assert_eq!(loaded.scan_start(201), 10);
        index.truncate_to_offset(10);
        assert_eq!(index.max_timestamp(), Some(100));
    }
}
