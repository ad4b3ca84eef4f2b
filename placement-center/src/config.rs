//! Placement center configuration: a TOML file, overridden by flags (see `main.rs`).
//!
//! Every field has a default, written out in `config/placement-center.example.toml`.
//! Unknown fields are errors naming the field and the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::raft::NodeId;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementConfig {
    /// This member's id (unique in the cluster, not 0).
    pub node_id: NodeId,
    /// gRPC address serving clients and peers.
    pub listen: SocketAddr,
    /// HTTP address of /metrics, /healthz and /readyz; none to disable.
    pub metrics_listen: Option<SocketAddr>,
    /// RocksDB and snapshot directory.
    pub data_dir: PathBuf,
    /// `id=HOST:PORT,...`: the members that bootstrap the cluster, each with the address
    /// peers and clients reach it at. Empty: a one-member cluster of this node at `listen`.
    /// A node not listed here starts empty and waits to be added (AddLearner).
    pub initial_cluster: String,
    /// Largest value accepted in a put, in bytes.
    pub max_value_size: usize,
    /// Largest key accepted, in bytes.
    pub max_key_size: usize,
    /// Watch events kept per node for watchers resuming from a past revision.
    pub watch_history: usize,
    pub raft: RaftConfig,
    pub telemetry: common_metrics::TelemetryConfig,
}

/// Raft timings and log management.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// A follower that hears no leader for a random time in [min, max] starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat period (well below the election timeout).
    pub heartbeat_interval_ms: u64,
    /// Build a snapshot after this many entries were applied since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log below the snapshot (lets slow followers catch up without one).
    pub logs_to_keep_after_snapshot: u64,
    /// Entries per AppendEntries RPC.
    pub max_payload_entries: u64,
    /// Client commands per proposal: concurrent writes share one log entry and one fsync.
    pub max_batch: usize,
    /// How long a write or linearizable read waits for a leader before failing.
    pub request_timeout_ms: u64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            node_id: 1,
            listen: "127.0.0.1:1228".parse().expect("valid address"),
            metrics_listen: Some("127.0.0.1:9081".parse().expect("valid address")),
            data_dir: PathBuf::from("data/placement-center"),
            initial_cluster: String::new(),
            max_value_size: 1024 * 1024,
            max_key_size: 4096,
            watch_history: 100_000,
            raft: RaftConfig::default(),
            telemetry: Default::default(),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            heartbeat_interval_ms: 100,
            snapshot_after_entries: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            max_payload_entries: 300,
            max_batch: 512,
            request_timeout_ms: 5_000,
        }
    }
}

impl PlacementConfig {
    /// Reads and validates a TOML file. Errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| Error::Config {
            path: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    /// The bootstrap members (id → address); this node alone when `initial_cluster` is empty.
    pub fn members(&self) -> std::result::Result<BTreeMap<NodeId, String>, String> {
        if self.initial_cluster.trim().is_empty() {
            return Ok(BTreeMap::from([(self.node_id, self.listen.to_string())]));
        }
        parse_initial_cluster(&self.initial_cluster)
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.node_id == 0 {
            return Err("node_id: must not be 0".into());
        }
        self.members()
            .map_err(|e| format!("initial_cluster: {e}"))?;
        let r = &self.raft;
        if r.election_timeout_min_ms == 0 || r.election_timeout_min_ms >= r.election_timeout_max_ms
        {
            return Err(
                "raft.election_timeout_min_ms: must be above 0 and below election_timeout_max_ms"
                    .into(),
            );
        }
        if r.heartbeat_interval_ms == 0 || r.heartbeat_interval_ms >= r.election_timeout_min_ms {
            return Err(
                "raft.heartbeat_interval_ms: must be above 0 and below election_timeout_min_ms"
                    .into(),
            );
        }
        if r.max_batch == 0 || r.max_payload_entries == 0 || r.snapshot_after_entries == 0 {
            return Err("raft.max_batch, raft.max_payload_entries, raft.snapshot_after_entries: must be at least 1".into());
        }
        if self.max_value_size == 0 || self.max_key_size == 0 || self.watch_history == 0 {
            return Err("max_value_size, max_key_size, watch_history: must be at least 1".into());
        }
        Ok(())
    }

    /// The openraft configuration these settings make.
    pub fn openraft(&self) -> std::result::Result<openraft::Config, String> {
        let r = &self.raft;
        openraft::Config {
            cluster_name: "robustmq-placement".into(),
            election_timeout_min: r.election_timeout_min_ms,
            election_timeout_max: r.election_timeout_max_ms,
            heartbeat_interval: r.heartbeat_interval_ms,
            install_snapshot_timeout: 2_000,
            max_payload_entries: r.max_payload_entries,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_after_entries),
            max_in_snapshot_log_to_keep: r.logs_to_keep_after_snapshot,
            snapshot_max_chunk_size: 1024 * 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    }
}

/// Parses `1=HOST:PORT,2=HOST:PORT`.
pub fn parse_initial_cluster(s: &str) -> std::result::Result<BTreeMap<NodeId, String>, String> {
    let mut members = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not id=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} is not a node id"))?;
        let addr = addr.trim();
        if id == 0
            || addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(format!("{part:?} is not id=HOST:PORT with a non-zero id"));
        }
        if members.insert(id, addr.to_owned()).is_some() {
            return Err(format!("node {id} listed twice"));
        }
    }
    if members.is_empty() {
        return Err("no members".into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_config_bootstraps_three_members_by_dns_name() {
        // deploy/k8s/base/config/placement-center.toml: the StatefulSet and compose mount it.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/k8s/base/config/placement-center.toml");
        let c = PlacementConfig::from_file(&path).expect("the deployed config is valid");
        let members = c.members().unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(
            members[&1],
            "placement-center-0.placement-center-headless:1228"
        );
    }

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/placement-center.example.toml");
        let c = PlacementConfig::from_file(&path).expect("example config is valid");
        let d = PlacementConfig::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.metrics_listen, d.metrics_listen);
        assert_eq!(c.max_value_size, d.max_value_size);
        assert_eq!(c.watch_history, d.watch_history);
        assert_eq!(
            c.raft.election_timeout_max_ms,
            d.raft.election_timeout_max_ms
        );
        assert_eq!(c.raft.max_batch, d.raft.max_batch);
        assert!(c.openraft().is_ok());
    }

    #[test]
    fn unknown_field_names_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pc.toml");
        std::fs::write(&path, "[raft]\nheartbeat_intervl_ms = 10\n").unwrap();
        let err = PlacementConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("heartbeat_intervl_ms") && err.contains("pc.toml"),
            "{err}"
        );
    }

    #[test]
    fn initial_cluster_parsing() {
        let m = parse_initial_cluster("1=127.0.0.1:1, 2=localhost:2").unwrap();
        assert_eq!(m[&2], "localhost:2");
        assert!(parse_initial_cluster("1=a:1,1=b:2")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_initial_cluster("x=a:1").is_err());
        assert!(parse_initial_cluster("1=nohost").is_err());
        let c = PlacementConfig::default();
        assert_eq!(c.members().unwrap().len(), 1);
    }
}
