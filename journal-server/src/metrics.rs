//! The journal server's metrics, registered beside the code that records them.
//!
//! Counters and latency histograms are updated on the hot path through handles resolved
//! once (no label lookups per record). State gauges — shards, segments, disk usage,
//! leadership, under-replication and follower lag — are read from the shards on each
//! scrape by [`JournalCollector`], so they can never drift from the truth. No shard name
//! is ever a label (unbounded); the follower label is a node id (bounded by the cluster).

use std::sync::Arc;

use common_metrics::LatencyHistogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::node::ShardMap;

/// Metrics of the storage writer (group commit).
#[derive(Debug, Clone, Default)]
pub struct StorageMetrics {
    /// One observation per `fdatasync` (one per group of appends).
    pub fsync_latency: LatencyHistogram,
    pub records_appended: Counter,
    /// Encoded record bytes appended by this node as leader.
    pub bytes_appended: Counter,
}

/// Metrics of replication.
#[derive(Debug, Clone, Default)]
pub struct ReplicationMetrics {
    pub elections_won: Counter,
    pub isr_shrinks: Counter,
    /// Divergent tails cut by this node as a follower.
    pub truncations: Counter,
    /// Bytes of batches fetched from leaders.
    pub bytes_replicated: Counter,
}

/// Every metric the journal server records (cheap to clone: handles share data).
#[derive(Debug, Clone, Default)]
pub struct JournalMetrics {
    pub storage: StorageMetrics,
    pub replication: ReplicationMetrics,
    /// From the Append request to its acknowledgement (replicas included).
    pub append_latency: LatencyHistogram,
    pub records_read: Counter,
    pub bytes_read: Counter,
    /// Bytes cut from torn or corrupt segment tails at startup.
    pub recovered_truncated_bytes: Counter,
}

impl JournalMetrics {
    /// Registers under `robustmq_journal_*`; pass the namespaced (`robustmq_`) registry.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("journal");
        r.register_with_unit(
            "append_latency",
            "Time from an Append request to its acknowledgement (durable on every in-sync replica)",
            Unit::Seconds,
            m.append_latency.clone(),
        );
        r.register_with_unit(
            "fsync_latency",
            "Duration of one fdatasync of a segment (shared by a group of appends)",
            Unit::Seconds,
            m.storage.fsync_latency.clone(),
        );
        r.register(
            "records_appended",
            "Records appended by this node as leader",
            m.storage.records_appended.clone(),
        );
        r.register_with_unit(
            "appended",
            "Encoded record bytes appended by this node as leader",
            Unit::Bytes,
            m.storage.bytes_appended.clone(),
        );
        r.register(
            "records_read",
            "Records returned by Read and Subscribe",
            m.records_read.clone(),
        );
        r.register_with_unit(
            "read",
            "Record bytes returned by Read and Subscribe",
            Unit::Bytes,
            m.bytes_read.clone(),
        );
        r.register(
            "leader_elections",
            "Shard leader elections won by this node",
            m.replication.elections_won.clone(),
        );
        r.register(
            "isr_shrinks",
            "Followers removed from a shard's in-sync replicas for lagging",
            m.replication.isr_shrinks.clone(),
        );
        r.register(
            "log_truncations",
            "Divergent log tails truncated by this node as a follower",
            m.replication.truncations.clone(),
        );
        r.register_with_unit(
            "replicated",
            "Bytes of record batches fetched from shard leaders",
            Unit::Bytes,
            m.replication.bytes_replicated.clone(),
        );
        r.register_with_unit(
            "recovery_truncated",
            "Bytes cut from torn or corrupt segment tails during startup recovery",
            Unit::Bytes,
            m.recovered_truncated_bytes.clone(),
        );
        m
    }
}

/// Reads state gauges from the open shards at scrape time.
#[derive(Debug)]
pub struct JournalCollector {
    shards: Arc<ShardMap>,
}

impl JournalCollector {
    /// Register with `registry.register_collector(Box::new(..))` on the namespaced
    /// registry.
    pub fn new(shards: Arc<ShardMap>) -> Self {
        Self { shards }
    }
}

impl Collector for JournalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = self.shards.list();
        let mut segments = 0i64;
        let mut disk = 0i64;
        let mut leading = 0i64;
        let mut under = 0i64;
        let mut lag: std::collections::BTreeMap<u64, i64> = Default::default();
        for shard in &shards {
            segments += shard.log().segment_count() as i64;
            disk += shard.log().size_bytes() as i64;
            let (leader, under_replicated, lags) = shard.replica().health();
            leading += i64::from(leader);
            under += i64::from(under_replicated);
            for (follower, records) in lags {
                *lag.entry(follower).or_default() += records as i64;
            }
        }
        let gauges: [(&str, &str, Option<Unit>, i64); 5] = [
            (
                "journal_shards",
                "Shard replicas open on this node",
                None,
                shards.len() as i64,
            ),
            (
                "journal_segments",
                "Segment files open on this node (all shards)",
                None,
                segments,
            ),
            (
                "journal_leader_shards",
                "Shards this node leads",
                None,
                leading,
            ),
            (
                "journal_under_replicated_shards",
                "Shards led here whose in-sync replicas are fewer than their replicas",
                None,
                under,
            ),
            (
                "storage_disk_usage",
                "Bytes of segment files on this node",
                Some(Unit::Bytes),
                disk,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(e)?;
        }
        let mut e = encoder.encode_descriptor(
            "journal_replication_lag_records",
            "Records a follower is behind this node (as leader), summed over the shards led here",
            None,
            MetricType::Gauge,
        )?;
        for (follower, records) in lag {
            let labels = [("follower", follower.to_string())];
            ConstGauge::new(records).encode(e.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn names_follow_the_conventions() {
        let mut registry = Registry::with_prefix("robustmq");
        let m = JournalMetrics::register(&mut registry);
        registry.register_collector(Box::new(JournalCollector::new(Arc::new(
            ShardMap::default(),
        ))));
        m.append_latency.observe(0.002);
        m.storage.records_appended.inc();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for name in [
            "robustmq_journal_append_latency_seconds_bucket",
            "robustmq_journal_fsync_latency_seconds_count",
            "robustmq_journal_records_appended_total 1",
            "robustmq_journal_appended_bytes_total",
            "robustmq_journal_records_read_total",
            "robustmq_journal_read_bytes_total",
            "robustmq_journal_leader_elections_total",
            "robustmq_journal_shards 0",
            "robustmq_journal_segments 0",
            "robustmq_storage_disk_usage_bytes 0",
            "robustmq_journal_under_replicated_shards 0",
            "robustmq_journal_leader_shards 0",
            "# TYPE robustmq_journal_replication_lag_records gauge",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
