//! Journal server configuration: a TOML file, overridden by flags (see `main.rs`).
//!
//! Every field has a default, all written out in
//! `journal-server/config/journal-server.example.toml`. Unknown fields are errors, so a
//! typo is reported with the file and the field instead of being silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::segment::batch::MAX_BATCH_LEN;

/// A journal node's id; 0 is reserved for "none".
pub type NodeId = u64;

/// The whole journal server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// This node's id (unique in the cluster, not 0).
    pub node_id: NodeId,
    /// gRPC address (client and peer services).
    pub listen: SocketAddr,
    /// HTTP address of /metrics, /healthz and /readyz; none to disable.
    pub metrics_listen: Option<SocketAddr>,
    /// Where shards live: `<data_dir>/shards/<name>/`.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    pub replication: ReplicationConfig,
    /// The journal nodes of the cluster, this one included. Empty: standalone.
    pub nodes: Vec<NodeConfig>,
    /// Shards this node serves from config (created at start when missing).
    pub shards: Vec<ShardConfig>,
    /// Membership in the placement center (`[placement]`); off without endpoints.
    pub placement: PlacementCenterConfig,
    pub telemetry: common_metrics::TelemetryConfig,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            listen: "127.0.0.1:2228".parse().expect("valid address"),
            metrics_listen: Some("127.0.0.1:9181".parse().expect("valid address")),
            data_dir: PathBuf::from("data/journal-server"),
            storage: StorageConfig::default(),
            replication: ReplicationConfig::default(),
            nodes: Vec::new(),
            shards: Vec::new(),
            placement: PlacementCenterConfig::default(),
            telemetry: Default::default(),
        }
    }
}

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Acknowledge only after `fdatasync`; concurrent appends share one (group commit).
    Fsync,
    /// **Unsafe**: acknowledge after the write reaches the page cache and `fdatasync`
    /// every `unsafe_flush_interval_ms`. A process crash loses nothing, but a power loss
    /// or kernel crash loses up to that much *acknowledged* data (on every replica at
    /// once, if they share the failure).
    UnsafeInterval,
}

/// Segment files, indexes, retention and durability.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Roll to a new segment when the active one would exceed this many bytes.
    pub segment_bytes: u64,
    /// Roll when the active segment's first record is older than this (0: never).
    pub segment_max_age_secs: u64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u64,
    /// Per shard: delete the oldest segments while the rest still holds this many
    /// bytes (0: no size limit).
    pub retention_bytes: u64,
    /// Delete segments whose newest record is older than this (0: keep forever).
    pub retention_secs: u64,
    /// How often retention runs.
    pub retention_check_interval_secs: u64,
    /// Largest record (key + payload + headers, encoded) accepted.
    pub max_record_bytes: usize,
    /// Largest `Append` request (all its records, encoded) accepted.
    pub max_append_bytes: usize,
    /// Most bytes written before one shared fsync (group commit batch cap).
    pub max_group_bytes: usize,
    pub durability: Durability,
    /// Only for `durability = "unsafe_interval"`: milliseconds between fsyncs.
    pub unsafe_flush_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            segment_max_age_secs: 7 * 24 * 3600,
            index_interval_bytes: 4096,
            retention_bytes: 0,
            retention_secs: 7 * 24 * 3600,
            retention_check_interval_secs: 60,
            max_record_bytes: 1024 * 1024,
            max_append_bytes: 16 * 1024 * 1024,
            max_group_bytes: 8 * 1024 * 1024,
            durability: Durability::Fsync,
            unsafe_flush_interval_ms: 1000,
        }
    }
}

/// Replication and leader election.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Replicas of a shard created without an explicit factor. 0: automatic (1
    /// standalone, 3 in a cluster, at most the number of nodes).
    pub replication_factor: u32,
    /// An append is acknowledged when every in-sync replica has it and at least this
    /// many replicas are in sync. The effective value is never below a majority of the
    /// shard's replicas (elections need a majority that has every acknowledged record)
    /// and never above the replica count.
    pub min_insync_replicas: u32,
    /// An append not acknowledged within this time fails with Unavailable (outcome
    /// unknown: the records may still become visible).
    pub ack_timeout_ms: u64,
    /// A follower that has not caught up with the leader for this long leaves the ISR.
    pub replica_lag_max_ms: u64,
    /// A follower that has not heard from its leader for this long (plus a delay by its
    /// rank in the replica list) starts an election.
    pub election_timeout_ms: u64,
    /// Leader housekeeping period: ISR shrink, quorum check, announcements.
    pub heartbeat_interval_ms: u64,
    /// Longest time a follower's fetch waits at the leader for new records.
    pub fetch_max_wait_ms: u64,
    /// Largest fetch response.
    pub fetch_max_bytes: u64,
    /// Timeout of vote, announce and create/delete RPCs between nodes.
    pub peer_timeout_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            replication_factor: 0,
            min_insync_replicas: 2,
            ack_timeout_ms: 5000,
            replica_lag_max_ms: 2000,
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            fetch_max_wait_ms: 250,
            fetch_max_bytes: 1024 * 1024,
            peer_timeout_ms: 1000,
        }
    }
}

impl ReplicationConfig {
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
    pub fn replica_lag_max(&self) -> Duration {
        Duration::from_millis(self.replica_lag_max_ms)
    }
    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms)
    }
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
    pub fn fetch_max_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_max_wait_ms)
    }
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }

    /// The ISR size an append needs on a shard with `replicas` replicas.
    pub fn effective_min_insync(&self, replicas: usize) -> usize {
        let majority = replicas / 2 + 1;
        (self.min_insync_replicas as usize)
            .max(majority)
            .min(replicas)
    }
}

/// One journal node.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: NodeId,
    /// `host:port` of its gRPC listener, as the other nodes dial it.
    pub addr: String,
}

/// A shard served from config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub name: String,
    /// Node ids holding a replica; empty: chosen like `CreateShard` does.
    #[serde(default)]
    pub replicas: Vec<NodeId>,
}

/// Registration in the placement center: this node appears under
/// `/cluster/nodes/journal/{node_id}` while it lives (a lease kept alive). Discovery only:
/// replication still uses `[[nodes]]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementCenterConfig {
    /// gRPC addresses (`host:port`) of the placement center's members; empty: do not
    /// register.
    pub endpoints: Vec<String>,
    /// Lease time to live: a node that stops renewing disappears this long after.
    pub lease_ttl_secs: i64,
    /// The gRPC address published for others to dial; `None`: `listen` (which must then
    /// not be an unspecified address such as 0.0.0.0).
    pub advertise: Option<String>,
}

impl Default for PlacementCenterConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            lease_ttl_secs: 5,
            advertise: None,
        }
    }
}

impl PlacementCenterConfig {
    /// Whether this node registers at all.
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    fn validate(&self, listen: SocketAddr) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err("placement.endpoints: empty address".into());
        }
        if self.lease_ttl_secs < 1 {
            return Err("placement.lease_ttl_secs: must be at least 1".into());
        }
        match &self.advertise {
            Some(a)
                if !a
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
            {
                Err(format!("placement.advertise: {a:?} is not HOST:PORT"))
            }
            None if listen.ip().is_unspecified() => Err(format!(
                "placement.advertise: required when listen is {listen} (others cannot dial it)"
            )),
            _ => Ok(()),
        }
    }
}

/// Checks a shard name: it becomes a directory name.
pub fn validate_shard_name(name: &str) -> Result<(), String> {
    let ok_len = !name.is_empty() && name.len() <= 200;
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok_len && ok_chars && !name.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "invalid shard name {name:?}: 1-200 characters of [A-Za-z0-9._-], not starting with '.'"
        ))
    }
}

impl JournalConfig {
    /// Reads and validates a TOML file. Errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::parse_file(path)?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Reads a TOML file without the cross-field checks, for a caller that applies
    /// flags and environment first and validates the result (`validate`).
    pub fn parse_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Whether this node runs without peers.
    pub fn is_standalone(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The replication factor of shards created without one.
    pub fn default_replication_factor(&self) -> usize {
        let nodes = self.nodes.len().max(1);
        match self.replication.replication_factor {
            0 if self.is_standalone() => 1,
            0 => nodes.min(3),
            rf => rf as usize,
        }
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("node_id: must not be 0".into());
        }
        let s = &self.storage;
        // Index entries store positions as u32; a segment may exceed segment_bytes by one
        // batch (at most MAX_BATCH_LEN), so 1 GiB keeps every position in range.
        if !(1024..=1 << 30).contains(&s.segment_bytes) {
            return Err("storage.segment_bytes: must be between 1024 and 1073741824".into());
        }
        if s.index_interval_bytes == 0 {
            return Err("storage.index_interval_bytes: must be at least 1".into());
        }
        if s.max_record_bytes == 0 || s.max_record_bytes > s.max_append_bytes {
            return Err("storage.max_record_bytes: must be between 1 and max_append_bytes".into());
        }
        if s.max_append_bytes > MAX_BATCH_LEN - 64 {
            return Err(format!(
                "storage.max_append_bytes: at most {}",
                MAX_BATCH_LEN - 64
            ));
        }
        if s.durability == Durability::UnsafeInterval && s.unsafe_flush_interval_ms == 0 {
            return Err("storage.unsafe_flush_interval_ms: must be at least 1".into());
        }
        if s.retention_check_interval_secs == 0 {
            return Err("storage.retention_check_interval_secs: must be at least 1".into());
        }
        let r = &self.replication;
        if r.min_insync_replicas == 0 {
            return Err("replication.min_insync_replicas: must be at least 1".into());
        }
        if r.heartbeat_interval_ms == 0 || r.election_timeout_ms < 2 * r.heartbeat_interval_ms {
            return Err(
                "replication.election_timeout_ms: must be at least twice heartbeat_interval_ms (> 0)".into(),
            );
        }
        if r.fetch_max_wait_ms == 0 || 2 * r.fetch_max_wait_ms > r.election_timeout_ms {
            return Err(
                "replication.fetch_max_wait_ms: must be between 1 and election_timeout_ms / 2"
                    .into(),
            );
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.id == 0 || !ids.insert(n.id) {
                return Err(format!("nodes[{i}].id: must be unique and not 0"));
            }
        }
        if !self.nodes.is_empty() && !ids.contains(&self.node_id) {
            return Err(format!("nodes: node_id {} is not listed", self.node_id));
        }
        let rf = self.default_replication_factor();
        if rf > self.nodes.len().max(1) {
            return Err(format!(
                "replication.replication_factor: {rf} is more than the {} node(s) listed",
                self.nodes.len().max(1)
            ));
        }
        self.placement.validate(self.listen)?;
        for (i, shard) in self.shards.iter().enumerate() {
            validate_shard_name(&shard.name).map_err(|e| format!("shards[{i}].name: {e}"))?;
            for id in &shard.replicas {
                let known = if self.nodes.is_empty() {
                    *id == self.node_id
                } else {
                    ids.contains(id)
                };
                if !known {
                    return Err(format!("shards[{i}].replicas: unknown node {id}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journal-server.example.toml");
        let c = JournalConfig::from_file(&path).expect("example config is valid");
        let d = JournalConfig::default();
        assert_eq!(c.node_id, d.node_id);
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.metrics_listen, d.metrics_listen);
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(format!("{:?}", c.storage), format!("{:?}", d.storage));
        assert_eq!(
            format!("{:?}", c.replication),
            format!("{:?}", d.replication)
        );
        assert!(c.nodes.is_empty() && c.shards.is_empty());
        assert_eq!(c.placement, d.placement);
    }

    #[test]
    fn placement_registration_rules() {
        let mut c = JournalConfig::default();
        assert!(!c.placement.enabled());
        c.placement.endpoints = vec!["127.0.0.1:1228".into()];
        assert!(c.validate().is_ok());
        c.placement.lease_ttl_secs = 0;
        assert!(c.validate().unwrap_err().contains("lease_ttl_secs"));
        c.placement.lease_ttl_secs = 5;
        c.listen = "0.0.0.0:2228".parse().unwrap();
        assert!(c.validate().unwrap_err().contains("placement.advertise"));
        c.placement.advertise = Some("journal-0.journal:2228".into());
        assert!(c.validate().is_ok());
        c.placement.advertise = Some("journal-0".into());
        assert!(c.validate().unwrap_err().contains("HOST:PORT"));
        // Without endpoints nothing registers, so nothing is checked.
        c.placement.endpoints.clear();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn cluster_example_config_is_valid() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journal-cluster.example.toml");
        let c = JournalConfig::from_file(&path).expect("cluster example is valid");
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.default_replication_factor(), 3);
        assert_eq!(c.shards[0].replicas, vec![1, 2, 3]);
    }

    #[test]
    fn the_deployed_config_needs_its_advertise_from_the_environment() {
        // deploy/k8s/base/config/journal-server.toml binds 0.0.0.0 and leaves the
        // published address to JOURNAL_SERVER_ADVERTISE (one file for every pod).
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/k8s/base/config/journal-server.toml");
        let err = JournalConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("placement.advertise"), "{err}");
        let mut c = JournalConfig::parse_file(&path).expect("it parses");
        assert_eq!(c.nodes.len(), 3);
        c.placement.advertise = Some("journal-server-0.journal-server-headless:2228".into());
        c.validate().expect("valid once advertised");
    }

    #[test]
    fn unknown_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.toml");
        std::fs::write(&path, "[storage]\nsegment_byts = 10\n").unwrap();
        let err = JournalConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("segment_byts") && err.contains("j.toml"),
            "{err}"
        );
    }

    #[test]
    fn cluster_rules() {
        let mut c = JournalConfig::default();
        assert_eq!(c.default_replication_factor(), 1);
        c.nodes = (1..=3)
            .map(|id| NodeConfig {
                id,
                addr: format!("127.0.0.1:{id}"),
            })
            .collect();
        assert_eq!(c.default_replication_factor(), 3);
        assert!(c.validate().is_ok());
        c.node_id = 4;
        assert!(c.validate().unwrap_err().contains("node_id 4"));
        c.node_id = 1;
        c.shards.push(ShardConfig {
            name: "a/b".into(),
            replicas: vec![],
        });
        assert!(c.validate().unwrap_err().contains("shards[0].name"));
        assert_eq!(c.replication.effective_min_insync(3), 2);
        assert_eq!(c.replication.effective_min_insync(1), 1);
        assert_eq!(c.replication.effective_min_insync(5), 3);
    }

    #[test]
    fn shard_names() {
        assert!(validate_shard_name("mqtt.qos-1_a").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", ".hidden"] {
            assert!(validate_shard_name(bad).is_err(), "{bad:?}");
        }
    }
}
