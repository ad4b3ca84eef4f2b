//! The benchmark payload: a fixed header (magic, publisher id, sequence number, send
//! time) followed by padding up to the requested size. Subscribers read it to measure
//! publish-to-receive latency and to account for lost, duplicated and reordered messages.

use std::time::{SystemTime, UNIX_EPOCH};

/// Marks a payload written by this tool ("MQB1"); anything else is counted as foreign.
pub const MAGIC: u32 = 0x4d51_4231;
/// Bytes taken by the header; the smallest payload the tool sends.
pub const HEADER_LEN: usize = 24;

/// What a subscriber learns from one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher in the run (dense: 0..publishers).
    pub publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub seq: u64,
    /// Wall-clock send time in nanoseconds since the Unix epoch. Wall clock, not a
    /// monotonic instant, so a `pub` and a `sub` run in separate processes still agree.
    pub sent_at_ns: u64,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Writes the header into the first [`HEADER_LEN`] bytes of `buf` (the rest is left as is).
pub fn write_header(buf: &mut [u8], stamp: Stamp) {
    buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    buf[4..8].copy_from_slice(&stamp.publisher.to_be_bytes());
    buf[8..16].copy_from_slice(&stamp.seq.to_be_bytes());
    buf[16..24].copy_from_slice(&stamp.sent_at_ns.to_be_bytes());
}

/// Reads the header, or `None` when the payload is not one of ours.
pub fn read_header(buf: &[u8]) -> Option<Stamp> {
    let head = buf.get(..HEADER_LEN)?;
    let word = |r: std::ops::Range<usize>| -> u64 {
        head[r]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    };
    if word(0..4) as u32 != MAGIC {
        return None;
    }
    Some(Stamp {
        publisher: word(4..8) as u32,
        seq: word(8..16),
        sent_at_ns: word(16..24),
    })
}

/// A whole payload of `size` bytes (at least [`HEADER_LEN`]) carrying `stamp`, for
/// clients that take the payload as bytes (rumqttc).
pub fn build(size: usize, stamp: Stamp) -> bytes::Bytes {
    let mut buf = bytes::BytesMut::zeroed(size.max(HEADER_LEN));
    write_header(&mut buf, stamp);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_foreign_payloads() {
        let mut buf = vec![0u8; 64];
        let stamp = Stamp {
            publisher: 7,
            seq: u64::MAX - 3,
            sent_at_ns: 1_700_000_000_123_456_789,
        };
        write_header(&mut buf, stamp);
        assert_eq!(read_header(&buf), Some(stamp));
        assert_eq!(read_header(&buf[..HEADER_LEN - 1]), None);
        assert_eq!(read_header(b"hello, this is not a bench payload"), None);
    }
}
