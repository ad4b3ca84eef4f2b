//! Where shards live: which journal nodes exist and which of them hold a shard's
//! replicas.
//!
//! Behind a trait so the source can move to the placement center (DESIGN.md: "journal:
//! shards, their replicas and leader" under a key prefix there). Today the only source is
//! [`StaticPlacement`], the node's own config. The leader is *not* placement data here:
//! replicas elect it among themselves (see `replication`), because with a static source
//! nothing could record a leader change safely.

use std::collections::BTreeMap;

use crate::config::{JournalConfig, NodeId};
use crate::error::{JournalError, Result};

/// A shard and the nodes that hold its replicas (preference order: the first is the
/// preferred leader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub name: String,
    pub replicas: Vec<NodeId>,
}

/// The source of cluster membership and shard placement.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// Every journal node, this one included: id → gRPC address.
    fn nodes(&self) -> BTreeMap<NodeId, String>;
    /// Shards that must exist at start.
    fn configured_shards(&self) -> Vec<ShardSpec>;
    /// Replicas for a new shard with `factor` copies (0: the default factor).
    fn assign_replicas(&self, shard: &str, factor: usize) -> Result<Vec<NodeId>>;
}

/// Placement from the node's config file: the `[[nodes]]` list and `[[shards]]`.
#[derive(Debug, Clone)]
pub struct StaticPlacement {
    nodes: BTreeMap<NodeId, String>,
    shards: Vec<ShardSpec>,
    default_factor: usize,
}

impl StaticPlacement {
    pub fn from_config(config: &JournalConfig) -> Self {
        let mut nodes: BTreeMap<NodeId, String> = config
            .nodes
            .iter()
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        nodes
            .entry(config.node_id)
            .or_insert_with(|| config.listen.to_string());
        let mut placement = Self {
            nodes,
            shards: Vec::new(),
            default_factor: config.default_replication_factor(),
        };
        placement.shards = config
            .shards
            .iter()
            .map(|s| ShardSpec {
                name: s.name.clone(),
                replicas: if s.replicas.is_empty() {
                    placement.spread(&s.name, placement.default_factor)
                } else {
                    s.replicas.clone()
                },
            })
            .collect();
        placement
    }

    /// `factor` consecutive nodes (in id order, wrapping) starting at a position given
    /// by the shard name's hash, so preferred leaders spread over the nodes.
    fn spread(&self, shard: &str, factor: usize) -> Vec<NodeId> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let start = (fnv1a(shard.as_bytes()) % ids.len() as u64) as usize;
        (0..factor.min(ids.len()))
            .map(|i| ids[(start + i) % ids.len()])
            .collect()
    }
}

impl Placement for StaticPlacement {
    fn nodes(&self) -> BTreeMap<NodeId, String> {
        self.nodes.clone()
    }

    fn configured_shards(&self) -> Vec<ShardSpec> {
        self.shards.clone()
    }

    fn assign_replicas(&self, shard: &str, factor: usize) -> Result<Vec<NodeId>> {
        let factor = if factor == 0 {
            self.default_factor
        } else {
            factor
        };
        if factor > self.nodes.len() {
            return Err(JournalError::InvalidArgument(format!(
                "replication factor {factor} is more than the {} journal node(s)",
                self.nodes.len()
            )));
        }
        Ok(self.spread(shard, factor))
    }
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between releases, and the
/// choice must agree across nodes and restarts).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeConfig, ShardConfig};

    fn cluster() -> JournalConfig {
        JournalConfig {
            nodes: (1..=3)
                .map(|id| NodeConfig {
                    id,
                    addr: format!("127.0.0.1:{}", 9000 + id),
                })
                .collect(),
            shards: vec![
                ShardConfig {
                    name: "fixed".into(),
                    replicas: vec![3, 1],
                },
                ShardConfig {
                    name: "auto".into(),
                    replicas: vec![],
                },
            ],
            ..JournalConfig::default()
        }
    }

    #[test]
    fn standalone_places_everything_here() {
        let p = StaticPlacement::from_config(&JournalConfig::default());
        assert_eq!(p.nodes().len(), 1);
        assert_eq!(p.assign_replicas("x", 0).unwrap(), vec![1]);
        assert!(p.assign_replicas("x", 2).is_err());
    }

    #[test]
    fn cluster_spreads_and_is_deterministic() {
        let p = StaticPlacement::from_config(&cluster());
        let shards = p.configured_shards();
        assert_eq!(shards[0].replicas, vec![3, 1]);
        assert_eq!(shards[1].replicas.len(), 3);
        let a = p.assign_replicas("orders", 2).unwrap();
        assert_eq!(a, p.assign_replicas("orders", 2).unwrap());
        assert_eq!(a.len(), 2);
        let leaders: std::collections::BTreeSet<_> = (0..30)
            .map(|i| p.assign_replicas(&format!("s{i}"), 3).unwrap()[0])
            .collect();
        assert_eq!(leaders.len(), 3, "preferred leaders spread over the nodes");
    }
}
