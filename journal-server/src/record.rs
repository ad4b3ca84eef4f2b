//! The record, as clients see it: key, payload, string headers (a W3C `traceparent` may
//! travel here), timestamp and offset.

use bytes::Bytes;

/// A record to append; the leader assigns its offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Bytes,
    pub payload: Bytes,
    /// Ordered pairs; the wire map has no order, the disk keeps what it was given.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch; 0 means "now" at the leader.
    pub timestamp_ms: i64,
}

impl NewRecord {
    /// A record with a payload only.
    pub fn with_payload(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Size of the record in the on-disk format, the unit of `max_record_bytes`.
    pub fn encoded_len(&self) -> usize {
        crate::segment::batch::record_encoded_len(self)
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Bytes,
    pub payload: Bytes,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// Bytes this record counts against a read's `max_bytes`.
    pub fn size(&self) -> usize {
        self.key.len()
            + self.payload.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 16
    }
}
