//! Cluster membership: every broker and journal node registers itself under
//! `/cluster/nodes/{kind}/{id}` with a lease it keeps alive, and the others watch that
//! prefix. A node that dies stops renewing its lease; the placement center deletes its key
//! when the lease expires and every watcher sees the delete.
//!
//! **Epochs.** A registration's epoch is its key's `create_revision`. Revisions are global
//! and only grow, and a registration always *creates* the key (it deletes an older
//! incarnation's key in the same transaction), so a new incarnation of a node always has a
//! higher epoch than any older one. A process that was paused or partitioned longer than
//! its TTL finds its lease gone, registers again and gets a new epoch; requests it sent
//! under the old epoch are fenced by receivers that have seen the new one
//! ([`Members::is_stale`]).

mod members;
mod registration;

use serde::{Deserialize, Serialize};

use crate::pb;

pub use members::Members;
pub use registration::Registration;

/// Where every node registers: `/cluster/nodes/{kind}/{id}`.
pub const NODES_PREFIX: &str = "/cluster/nodes/";

/// What a node publishes about itself; JSON in the placement center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `"broker"` or `"journal"`.
    pub kind: String,
    pub id: u64,
    /// `host:port` that peers and clients use for gRPC.
    pub grpc: String,
    /// `host:port` of `/metrics` and the health endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// `host:port` of the MQTT listener (brokers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<String>,
    /// The node's software version.
    pub version: String,
}

/// A registered member as seen by watchers: its info and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub info: NodeInfo,
    /// The `create_revision` of the member's key: higher for every new incarnation.
    pub epoch: u64,
}

/// Key of a node: `/cluster/nodes/{kind}/{id}`.
pub fn node_key(kind: &str, id: u64) -> String {
    format!("{NODES_PREFIX}{kind}/{id}")
}

/// The prefix holding every node of `kind`: `/cluster/nodes/{kind}/`.
pub fn kind_prefix(kind: &str) -> String {
    format!("{NODES_PREFIX}{kind}/")
}

/// The node id of a key under `prefix`; `None` for anything else (deeper keys, non-numbers).
fn id_of(prefix: &str, key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// A member from a key-value under `prefix`; a value that is not a `NodeInfo` is skipped
/// with a warning (someone else wrote there).
fn decode(prefix: &str, kv: &pb::KeyValue) -> Option<(u64, Member)> {
    let id = id_of(prefix, &kv.key)?;
    match serde_json::from_slice::<NodeInfo>(&kv.value) {
        Ok(info) => Some((
            id,
            Member {
                info,
                epoch: kv.create_revision as u64,
            },
        )),
        Err(e) => {
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "ignoring a node key whose value is not a node description");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfo {
        NodeInfo {
            kind: "broker".into(),
            id: 7,
            grpc: "10.0.0.7:1228".into(),
            metrics: None,
            mqtt: Some("10.0.0.7:1883".into()),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn keys_and_prefixes() {
        assert_eq!(node_key("broker", 7), "/cluster/nodes/broker/7");
        assert_eq!(kind_prefix("journal"), "/cluster/nodes/journal/");
        assert!(node_key("journal", 1).starts_with(&kind_prefix("journal")));
        let p = kind_prefix("broker");
        assert_eq!(id_of(&p, b"/cluster/nodes/broker/42"), Some(42));
        for other in [
            &b"/cluster/nodes/broker/42/x"[..],
            b"/cluster/nodes/broker/",
            b"/cluster/nodes/brokers/1",
            b"/cluster/nodes/broker/-1",
        ] {
            assert_eq!(id_of(&p, other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn json_leaves_out_absent_addresses_and_round_trips() {
        let json = serde_json::to_string(&info()).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"broker","id":7,"grpc":"10.0.0.7:1228","mqtt":"10.0.0.7:1883","version":"0.1.0"}"#
        );
        assert_eq!(serde_json::from_str::<NodeInfo>(&json).unwrap(), info());
        // Older writers may omit the optional fields entirely.
        let minimal = r#"{"kind":"journal","id":1,"grpc":"h:1","version":"v"}"#;
        let parsed: NodeInfo = serde_json::from_str(minimal).unwrap();
        assert_eq!((parsed.metrics, parsed.mqtt), (None, None));
    }

    #[test]
    fn decode_takes_the_epoch_from_the_create_revision() {
        let kv = pb::KeyValue {
            key: node_key("broker", 7).into_bytes(),
            value: serde_json::to_vec(&info()).unwrap(),
            create_revision: 12,
            mod_revision: 15,
            version: 2,
            lease: 3,
        };
        let (id, member) = decode(&kind_prefix("broker"), &kv).unwrap();
        assert_eq!((id, member.epoch, member.info), (7, 12, info()));
        let garbage = pb::KeyValue {
            value: b"not json".to_vec(),
            ..kv
        };
        assert!(decode(&kind_prefix("broker"), &garbage).is_none());
    }
}
