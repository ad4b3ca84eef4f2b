//! Conversions between the wire messages and the domain types.

use bytes::Bytes;
use robustmq_proto::journal as pb;

use crate::record::{NewRecord, Record};
use crate::shard::ShardStatus;

impl From<pb::Record> for NewRecord {
    fn from(r: pb::Record) -> Self {
        let mut headers: Vec<(String, String)> = r.headers.into_iter().collect();
        // The wire map has no order; storing a sorted list keeps equal records equal.
        headers.sort_unstable();
        NewRecord {
            key: Bytes::from(r.key),
            payload: Bytes::from(r.payload),
            headers,
            timestamp_ms: r.timestamp_ms,
        }
    }
}

impl From<Record> for pb::Record {
    fn from(r: Record) -> Self {
        pb::Record {
            key: r.key.to_vec(),
            payload: r.payload.to_vec(),
            headers: r.headers.into_iter().collect(),
            timestamp_ms: r.timestamp_ms,
            offset: r.offset as i64,
        }
    }
}

/// The wire form of a shard's status, answered by node `node_id`.
pub fn shard_info(s: ShardStatus, node_id: u64, addr_of: impl Fn(u64) -> String) -> pb::ShardInfo {
    pb::ShardInfo {
        name: s.name,
        start_offset: s.start_offset as i64,
        end_offset: s.end_offset as i64,
        log_end_offset: s.log_end_offset as i64,
        size_bytes: s.size_bytes,
        segments: s.segments as u32,
        replicas: s
            .replicas
            .into_iter()
            .map(|r| pb::Replica {
                node_id: r.node_id,
                addr: addr_of(r.node_id),
                in_sync: r.in_sync,
                log_end_offset: r.log_end.map_or(-1, |e| e as i64),
            })
            .collect(),
        leader_id: s.leader.unwrap_or(0),
        leader_addr: s.leader_addr,
        leader_epoch: s.epoch,
        node_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let wire = pb::Record {
            key: b"k".to_vec(),
            payload: b"p".to_vec(),
            headers: [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into(),
            timestamp_ms: 9,
            offset: 123,
        };
        let new = NewRecord::from(wire.clone());
        assert_eq!(new.headers[0].0, "a");
        let stored = Record {
            offset: 5,
            timestamp_ms: new.timestamp_ms,
            key: new.key,
            payload: new.payload,
            headers: new.headers,
        };
        let back = pb::Record::from(stored);
        assert_eq!(back.offset, 5);
        assert_eq!(back.headers, wire.headers);
        assert_eq!(back.payload, wire.payload);
    }
}
