//! Reads of the shard log: committed records for clients, raw batches for followers,
//! offset by timestamp. All run on a snapshot of the segment list with positional reads,
//! concurrently with the writer.

use bytes::Bytes;

use super::Log;
use crate::error::StorageError;
use crate::record::Record;
use crate::segment::batch;

impl Log {
    /// Records from `from` (inclusive) up to `limit` (exclusive), at most `max_records`
    /// and about `max_bytes` (at least one record when one is available).
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        limit: u64,
    ) -> Result<Vec<Record>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let segments = self.snapshot();
        let first = segments
            .partition_point(|s| s.base_offset() <= from)
            .saturating_sub(1);
        let mut cursor = from;
        for seg in &segments[first..] {
            let size = seg.size();
            let Some((mut pos, _)) = seg.find_batch(cursor)? else {
                continue;
            };
            while pos < size {
                let h = seg.read_header(pos, size)?;
                if h.base_offset >= limit {
                    return Ok(out);
                }
                if h.next_offset() > cursor {
                    let data = seg.read_batch(pos, &h)?;
                    let records = batch::decode_records(&h, &data)
                        .map_err(|e| self.corrupt(format!("batch at {pos}: {e}")))?;
                    let from_here = cursor;
                    for r in records.into_iter().filter(|r| r.offset >= from_here) {
                        let full = out.len() >= max_records
                            || (!out.is_empty() && bytes + r.size() > max_bytes);
                        if r.offset >= limit || full {
                            return Ok(out);
                        }
                        bytes += r.size();
                        cursor = r.offset + 1;
                        out.push(r);
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(out)
    }

    /// Whole batches from `from` (which must start a batch) up to `limit`, about
    /// `max_bytes` of them (at least one), in the on-disk format: what a follower fetches.
    pub fn read_raw(&self, from: u64, max_bytes: usize, limit: u64) -> Result<Bytes, StorageError> {
        let mut out = Vec::new();
        let segments = self.snapshot();
        let first = segments
            .partition_point(|s| s.base_offset() <= from)
            .saturating_sub(1);
        let mut cursor = from;
        for seg in &segments[first..] {
            let size = seg.size();
            let Some((start, h)) = seg.find_batch(cursor)? else {
                continue;
            };
            if h.base_offset != cursor {
                return Err(self.corrupt(format!("fetch offset {cursor} is inside a batch")));
            }
            let mut pos = start;
            while pos < size {
                let h = seg.read_header(pos, size)?;
                let fits =
                    out.len() as u64 + (pos - start) + h.total_len() as u64 <= max_bytes as u64;
                let first_batch = out.is_empty() && pos == start;
                if h.next_offset() > limit || !(fits || first_batch) {
                    break;
                }
                pos += h.total_len() as u64;
                cursor = h.next_offset();
            }
            if pos > start {
                out.extend_from_slice(&seg.read_raw(start, (pos - start) as usize)?);
            }
            if pos < size || cursor >= limit {
                break;
            }
        }
        Ok(Bytes::from(out))
    }

    /// The first offset below `limit` whose record timestamp is `>= ts`; `limit` when
    /// there is none.
    pub fn offset_for_timestamp(&self, ts: i64, limit: u64) -> Result<u64, StorageError> {
        let segments = self.snapshot();
        for seg in segments
            .iter()
            .filter(|s| s.max_timestamp() >= ts && s.base_offset() < limit)
        {
            let size = seg.size();
            let (mut pos, _) = seg.time_scan_start(ts);
            while pos < size {
                let h = seg.read_header(pos, size)?;
                if h.base_offset >= limit {
                    return Ok(limit);
                }
                if h.max_timestamp >= ts {
                    let data = seg.read_batch(pos, &h)?;
                    let records = batch::decode_records(&h, &data)
                        .map_err(|e| self.corrupt(format!("batch at {pos}: {e}")))?;
                    if let Some(r) = records.iter().find(|r| r.timestamp_ms >= ts) {
                        return Ok(r.offset.min(limit));
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(limit)
    }
}
