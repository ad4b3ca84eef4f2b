//! Storage metrics: RocksDB operation latency by operation, state-machine apply latency,
//! snapshots, and the data directory's size.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use common_metrics::{latency_family, LatencyHistogram};

/// A storage operation, the `operation` label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StorageOp {
    log_append,
    log_read,
    log_truncate,
    log_purge,
    vote_save,
    apply,
    snapshot_build,
    snapshot_install,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: StorageOp,
}

/// Handles resolved once at startup: recording is one histogram update.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    pub log_append: LatencyHistogram,
    pub log_read: LatencyHistogram,
    pub log_truncate: LatencyHistogram,
    pub log_purge: LatencyHistogram,
    pub vote_save: LatencyHistogram,
    /// RocksDB write of one apply call (the whole batch).
    pub apply_write: LatencyHistogram,
    pub snapshot_build: LatencyHistogram,
    pub snapshot_install: LatencyHistogram,
    /// Time to apply one batch of committed entries to the state machine.
    pub apply: LatencyHistogram,
    pub snapshot_builds: Counter,
    pub snapshot_installs: Counter,
    pub disk_usage: Gauge,
}

impl StorageMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let ops = latency_family::<OpLabels>();
        registry.register_with_unit(
            "storage_operation_duration",
            "Latency of RocksDB operations of the placement center, by operation",
            Unit::Seconds,
            ops.clone(),
        );
        let op = |operation| ops.get_or_create(&OpLabels { operation }).clone();
        let apply = LatencyHistogram::new();
        registry.register_with_unit(
            "raft_apply_duration",
            "Time to apply a batch of committed Raft entries to the state machine",
            Unit::Seconds,
            apply.clone(),
        );
        let snapshot_builds = Counter::default();
        registry.register(
            "raft_snapshot_builds",
            "Snapshots built by this node",
            snapshot_builds.clone(),
        );
        let snapshot_installs = Counter::default();
        registry.register(
            "raft_snapshot_installs",
            "Snapshots installed on this node",
            snapshot_installs.clone(),
        );
        let disk_usage = Gauge::default();
        registry.register_with_unit(
            "storage_disk_usage",
            "Size of the placement center's data directory",
            Unit::Bytes,
            disk_usage.clone(),
        );
        StorageMetrics {
            log_append: op(StorageOp::log_append),
            log_read: op(StorageOp::log_read),
            log_truncate: op(StorageOp::log_truncate),
            log_purge: op(StorageOp::log_purge),
            vote_save: op(StorageOp::vote_save),
            apply_write: op(StorageOp::apply),
            snapshot_build: op(StorageOp::snapshot_build),
            snapshot_install: op(StorageOp::snapshot_install),
            apply,
            snapshot_builds,
            snapshot_installs,
            disk_usage,
        }
    }

    /// Metrics registered nowhere (storage tests).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }
}

/// Bytes used by every file under `dir` (what `du` would count, roughly).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
