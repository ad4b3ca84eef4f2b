//! Raft gauges and counters, driven from openraft's metrics watch channel by
//! [`crate::node::tasks::run_raft_metrics`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use common_metrics::LatencyHistogram;

/// The `follower` label: a member's node id (bounded by the membership).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub follower: String,
}

/// What became of a client write proposed on this node.
#[derive(
    Clone, Copy, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
pub enum ProposalResult {
    /// Committed and applied.
    ok,
    /// Applied, and the state machine refused it (a failed compare, an unknown lease):
    /// an answer, not a failure of the placement center.
    refused,
    /// This node is not the leader; the caller is sent to it.
    not_leader,
    /// Not committed within the request timeout (no quorum).
    timeout,
    /// Raft stopped or refused the write.
    error,
}

impl ProposalResult {
    const ALL: [ProposalResult; 5] = [
        ProposalResult::ok,
        ProposalResult::refused,
        ProposalResult::not_leader,
        ProposalResult::timeout,
        ProposalResult::error,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: ProposalResult,
}

/// Client writes: how long they take from proposal to application on the leader, and how
/// they end (`robustmq_raft_proposals_total{result}`), one counter per result resolved
/// once.
#[derive(Clone, Debug, Default)]
pub struct ProposalMetrics {
    pub latency: LatencyHistogram,
    results: [Counter; ProposalResult::ALL.len()],
}

impl ProposalMetrics {
    fn register(registry: &mut Registry, latency: LatencyHistogram) -> Self {
        let family = Family::<ResultLabels, Counter>::default();
        let results = ProposalResult::ALL
            .map(|result| family.get_or_create(&ResultLabels { result }).clone());
        registry.register(
            "raft_proposals",
            "Client writes proposed on this node, by result",
            family,
        );
        ProposalMetrics { latency, results }
    }

    /// Counts one client write's result.
    pub fn count(&self, result: ProposalResult) {
        self.results[result as usize].inc();
    }
}

/// Raft state of this node as Prometheus sees it.
#[derive(Clone, Debug)]
pub struct RaftGauges {
    pub leader_status: Gauge,
    pub nodes_total: Gauge,
    pub term: Gauge,
    pub leader_changes: Counter,
    pub elections: Counter,
    pub last_log_index: Gauge,
    pub committed_index: Gauge,
    pub applied_index: Gauge,
    /// Entries the leader has that each follower has not matched (leader only).
    pub replication_lag: Family<FollowerLabels, Gauge>,
    /// Propose-to-apply latency and results of client writes.
    pub proposals: ProposalMetrics,
}

impl RaftGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = RaftGauges {
            leader_status: Gauge::default(),
            nodes_total: Gauge::default(),
            term: Gauge::default(),
            leader_changes: Counter::default(),
            elections: Counter::default(),
            last_log_index: Gauge::default(),
            committed_index: Gauge::default(),
            applied_index: Gauge::default(),
            replication_lag: Family::default(),
            proposals: ProposalMetrics::default(),
        };
        registry.register(
            "cluster_leader_status",
            "1 if this node is the Raft leader, else 0",
            g.leader_status.clone(),
        );
        registry.register(
            "cluster_nodes_total",
            "Members of the placement cluster (voters and learners)",
            g.nodes_total.clone(),
        );
        registry.register(
            "raft_term",
            "Current Raft term of this node",
            g.term.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Times the leader known to this node changed",
            g.leader_changes.clone(),
        );
        registry.register(
            "raft_elections",
            "Elections this node started (became candidate)",
            g.elections.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "Index of the last entry in this node's log",
            g.last_log_index.clone(),
        );
        registry.register(
            "raft_committed_index",
            "Highest log index known committed",
            g.committed_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Highest log index applied to the state machine",
            g.applied_index.clone(),
        );
        registry.register(
            "raft_replication_lag_entries",
            "Log entries a follower is behind the leader's last entry (reported by the leader)",
            g.replication_lag.clone(),
        );
        registry.register_with_unit(
            "raft_write_duration",
            "Time from proposing a client write to its application on the leader",
            Unit::Seconds,
            g.proposals.latency.clone(),
        );
        let proposals = ProposalMetrics::register(registry, g.proposals.latency.clone());
        RaftGauges { proposals, ..g }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StorageMetrics;

    #[test]
    fn names_follow_the_namespace_and_unit_rules() {
        let mut registry = Registry::default();
        let root = common_metrics::namespaced(&mut registry);
        let raft = RaftGauges::register(root);
        let storage = StorageMetrics::register(root);
        raft.leader_status.set(1);
        raft.leader_changes.inc();
        raft.replication_lag
            .get_or_create(&FollowerLabels {
                follower: "2".into(),
            })
            .set(7);
        storage.log_append.observe(0.002);
        storage.disk_usage.set(4096);
        raft.proposals.count(ProposalResult::timeout);
        raft.proposals.count(ProposalResult::ok);
        raft.proposals.count(ProposalResult::ok);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "robustmq_cluster_leader_status 1",
            "robustmq_cluster_nodes_total 0",
            "robustmq_raft_leader_changes_total 1",
            "robustmq_raft_elections_total 0",
            "robustmq_raft_replication_lag_entries{follower=\"2\"} 7",
            "robustmq_raft_write_duration_seconds_bucket",
            "robustmq_raft_apply_duration_seconds_bucket",
            "robustmq_storage_operation_duration_seconds_count{operation=\"log_append\"} 1",
            "robustmq_storage_disk_usage_bytes 4096",
            "robustmq_raft_snapshot_builds_total 0",
            // Every result exists from the start, so failure ratios have a numerator.
            "robustmq_raft_proposals_total{result=\"ok\"} 2",
            "robustmq_raft_proposals_total{result=\"timeout\"} 1",
            "robustmq_raft_proposals_total{result=\"error\"} 0",
            "robustmq_raft_proposals_total{result=\"not_leader\"} 0",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
