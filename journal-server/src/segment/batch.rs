//! The on-disk (and on-wire, for replication) record batch.
//!
//! One `Append` becomes one batch: a fixed header with a length and a CRC32C, then the
//! records. Offsets are implicit (`base_offset + i`), so a batch can be copied verbatim
//! from a leader's segment to a follower's. All integers are little-endian.
//!
//! ```text
//!  0  u32  length      bytes after this field (header rest + records)
//!  4  u32  crc         CRC32C of every byte after this field
//!  8  u8   magic       1
//!  9  u8   flags       0 (reserved)
//! 10  u32  count       records in the batch (>= 1)
//! 14  u64  base_offset offset of the first record
//! 22  u64  epoch       leader epoch that wrote the batch
//! 30  i64  max_ts      largest record timestamp (ms), for the time index and retention
//! 38  records: i64 ts | u32 key_len | key | u32 payload_len | payload
//!              | u16 header_count | (u16 name_len | name | u32 value_len | value)*
//! ```
//!
//! The CRC covers the whole header after itself, so a torn length or a flipped offset is
//! caught just like a damaged payload.

use bytes::{Buf, BufMut, Bytes};

use crate::record::{NewRecord, Record};

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 38;
/// Format version in byte 8.
pub const MAGIC: u8 = 1;
/// Hard upper bound of one batch; a larger length field is garbage, not data.
pub const MAX_BATCH_LEN: usize = 64 * 1024 * 1024;

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("incomplete batch: need {needed} bytes, have {have}")]
    Incomplete { needed: usize, have: usize },
    #[error("unknown batch magic {0}")]
    BadMagic(u8),
    #[error("batch length {0} out of range")]
    BadLength(u32),
    #[error("batch with no records")]
    Empty,
    #[error("batch CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub length: u32,
    pub crc: u32,
    pub count: u32,
    pub base_offset: u64,
    pub epoch: u64,
    pub max_timestamp: i64,
}

impl BatchHeader {
    /// Bytes of the whole batch, header included.
    pub fn total_len(&self) -> usize {
        4 + self.length as usize
    }

    /// The offset after the batch's last record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

/// Reads and sanity-checks a header from the first [`HEADER_LEN`] bytes of `buf`; the CRC
/// is checked separately, once the whole batch is at hand.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Incomplete {
            needed: HEADER_LEN,
            have: buf.len(),
        });
    }
    let mut b = buf;
    let length = b.get_u32_le();
    let crc = b.get_u32_le();
    let magic = b.get_u8();
    let _flags = b.get_u8();
    let count = b.get_u32_le();
    let base_offset = b.get_u64_le();
    let epoch = b.get_u64_le();
    let max_timestamp = b.get_i64_le();
    if magic != MAGIC {
        return Err(BatchError::BadMagic(magic));
    }
    if (length as usize) < HEADER_LEN - 4 || length as usize > MAX_BATCH_LEN {
        return Err(BatchError::BadLength(length));
    }
    if count == 0 {
        return Err(BatchError::Empty);
    }
    Ok(BatchHeader {
        length,
        crc,
        count,
        base_offset,
        epoch,
        max_timestamp,
    })
}

/// Checks the CRC of a whole batch (`batch.len() == header.total_len()`).
pub fn check_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() < header.total_len() {
        return Err(BatchError::Incomplete {
            needed: header.total_len(),
            have: batch.len(),
        });
    }
    let computed = crc32c::crc32c(&batch[8..header.total_len()]);
    if computed != header.crc {
        return Err(BatchError::Crc {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Encoded size of one record inside a batch.
pub fn record_encoded_len(record: &NewRecord) -> usize {
    8 + 4
        + record.key.len()
        + 4
        + record.payload.len()
        + 2
        + record
            .headers
            .iter()
            .map(|(k, v)| 2 + k.len() + 4 + v.len())
            .sum::<usize>()
}

/// Appends one batch holding `records` to `out`; a record timestamp of 0 becomes `now_ms`.
/// The caller has checked sizes (each record's header names fit a u16, the batch fits
/// [`MAX_BATCH_LEN`]).
pub fn encode(
    out: &mut Vec<u8>,
    base_offset: u64,
    epoch: u64,
    records: &[NewRecord],
    now_ms: i64,
) -> BatchHeader {
    let start = out.len();
    let body: usize = records.iter().map(record_encoded_len).sum();
    out.reserve(HEADER_LEN + body);
    let max_timestamp = records
        .iter()
        .map(|r| effective_ts(r.timestamp_ms, now_ms))
        .max()
        .unwrap_or(now_ms);
    let length = (HEADER_LEN - 4 + body) as u32;
    out.put_u32_le(length);
    out.put_u32_le(0); // CRC, patched below
    out.put_u8(MAGIC);
    out.put_u8(0);
    out.put_u32_le(records.len() as u32);
    out.put_u64_le(base_offset);
    out.put_u64_le(epoch);
    out.put_i64_le(max_timestamp);
    for r in records {
        out.put_i64_le(effective_ts(r.timestamp_ms, now_ms));
        out.put_u32_le(r.key.len() as u32);
        out.put_slice(&r.key);
        out.put_u32_le(r.payload.len() as u32);
        out.put_slice(&r.payload);
        out.put_u16_le(r.headers.len() as u16);
        for (k, v) in &r.headers {
            out.put_u16_le(k.len() as u16);
            out.put_slice(k.as_bytes());
            out.put_u32_le(v.len() as u32);
            out.put_slice(v.as_bytes());
        }
    }
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    BatchHeader {
        length,
        crc,
        count: records.len() as u32,
        base_offset,
        epoch,
        max_timestamp,
    }
}

fn effective_ts(ts: i64, now_ms: i64) -> i64 {
    if ts == 0 {
        now_ms
    } else {
        ts
    }
}

/// Decodes the records of a whole, CRC-checked batch. Records share `batch`'s memory.
pub fn decode_records(header: &BatchHeader, batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let mut buf = batch.slice(HEADER_LEN..header.total_len());
    let mut records = Vec::with_capacity(header.count as usize);
    for i in 0..header.count {
        let timestamp_ms = get_i64(&mut buf)?;
        let key_len = get_u32(&mut buf)? as usize;
        let key = take(&mut buf, key_len)?;
        let payload_len = get_u32(&mut buf)? as usize;
        let payload = take(&mut buf, payload_len)?;
        let header_count = get_u16(&mut buf)?;
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let name_len = get_u16(&mut buf)? as usize;
            let name = take(&mut buf, name_len)?;
            let value_len = get_u32(&mut buf)? as usize;
            let value = take(&mut buf, value_len)?;
            headers.push((utf8(name)?, utf8(value)?));
        }
        records.push(Record {
            offset: header.base_offset + u64::from(i),
            timestamp_ms,
            key,
            payload,
            headers,
        });
    }
    if buf.has_remaining() {
        return Err(BatchError::Malformed("bytes after the last record"));
    }
    Ok(records)
}

fn get_i64(buf: &mut Bytes) -> Result<i64, BatchError> {
    (buf.remaining() >= 8)
        .then(|| buf.get_i64_le())
        .ok_or(BatchError::Malformed("truncated timestamp"))
}

fn get_u32(buf: &mut Bytes) -> Result<u32, BatchError> {
    (buf.remaining() >= 4)
        .then(|| buf.get_u32_le())
        .ok_or(BatchError::Malformed("truncated length"))
}

fn get_u16(buf: &mut Bytes) -> Result<u16, BatchError> {
    (buf.remaining() >= 2)
        .then(|| buf.get_u16_le())
        .ok_or(BatchError::Malformed("truncated count"))
}

fn take(buf: &mut Bytes, len: usize) -> Result<Bytes, BatchError> {
    (buf.remaining() >= len)
        .then(|| buf.split_to(len))
        .ok_or(BatchError::Malformed("field longer than the batch"))
}

fn utf8(bytes: Bytes) -> Result<String, BatchError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| BatchError::Malformed("header is not UTF-8"))
}

/// Walks a buffer of concatenated whole batches (a replication fetch), checking each
/// header and CRC.
pub fn split_batches(buf: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), BatchError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let result = parse_header(rest).and_then(|h| {
            check_crc(&h, rest)?;
            Ok(h)
        });
        match result {
            Ok(h) => {
                let (batch, tail) = rest.split_at(h.total_len());
                rest = tail;
                Some(Ok((h, batch)))
            }
            Err(e) => {
                rest = &[];
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, payload: &str, ts: i64) -> NewRecord {
        NewRecord {
            key: Bytes::copy_from_slice(key.as_bytes()),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            headers: vec![(
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            )],
            timestamp_ms: ts,
        }
    }

    #[test]
    fn round_trip_with_headers_and_default_timestamp() {
        let records = vec![record("k1", "hello", 5), record("", "", 0)];
        let mut out = Vec::new();
        let header = encode(&mut out, 42, 7, &records, 1_000);
        assert_eq!(out.len(), header.total_len());
        assert_eq!(
            out.len(),
            HEADER_LEN + records.iter().map(record_encoded_len).sum::<usize>()
        );
        let parsed = parse_header(&out).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(parsed.next_offset(), 44);
        assert_eq!(parsed.epoch, 7);
        assert_eq!(parsed.max_timestamp, 1_000);
        check_crc(&parsed, &out).unwrap();
        let decoded = decode_records(&parsed, &Bytes::from(out)).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].offset, 42);
        assert_eq!(&decoded[0].key[..], b"k1");
        assert_eq!(&decoded[0].payload[..], b"hello");
        assert_eq!(decoded[0].timestamp_ms, 5);
        assert_eq!(decoded[0].headers, records[0].headers);
        assert_eq!(decoded[1].offset, 43);
        assert_eq!(decoded[1].timestamp_ms, 1_000, "0 means now");
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut out = Vec::new();
        encode(&mut out, 0, 1, &[record("k", "payload", 9)], 9);
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            let ok = parse_header(&bad).and_then(|h| check_crc(&h, &bad).map(|_| h));
            assert!(ok.is_err(), "flip at byte {i} not detected");
        }
    }

    #[test]
    fn garbage_headers_are_rejected() {
        assert!(matches!(
            parse_header(&[0u8; 10]),
            Err(BatchError::Incomplete { .. })
        ));
        let zeros = [0u8; HEADER_LEN];
        assert_eq!(parse_header(&zeros), Err(BatchError::BadMagic(0)));
        let mut out = Vec::new();
        encode(&mut out, 0, 1, &[record("k", "v", 1)], 1);
        out[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header(&out), Err(BatchError::BadLength(u32::MAX)));
    }

    #[test]
    fn split_stops_at_first_bad_batch() {
        let mut out = Vec::new();
        encode(&mut out, 0, 1, &[record("a", "1", 1)], 1);
        encode(
            &mut out,
            1,
            1,
            &[record("b", "2", 1), record("c", "3", 1)],
            1,
        );
        let good: Vec<_> = split_batches(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!(good[1].0.base_offset, 1);
        let mut torn = out.clone();
        torn.truncate(out.len() - 3);
        let results: Vec<_> = split_batches(&torn).collect();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
    }
}
