//! The live status line: processes up, the placement-center leader, MQTT connections and
//! message rates, computed from `/readyz`, `Cluster/Status` and the brokers' `/metrics`.

use std::time::Instant;

use futures::future::join_all;

use crate::cluster::LocalCluster;
use crate::metrics_text::{sum_samples, CONNECTIONS_ACTIVE, MESSAGES_DELIVERED, MESSAGES_RECEIVED};
use crate::probe;
use crate::Service;

/// One look at the whole cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterStatus {
    /// Processes answering 200 on `/readyz`.
    pub ready: usize,
    /// Processes in the plan.
    pub total: usize,
    /// The placement-center leader's node id, if one is known.
    pub leader: Option<u64>,
    /// Open MQTT connections over all brokers.
    pub connections: f64,
    /// PUBLISH messages received from clients, summed over the brokers, since they started.
    pub messages_received: f64,
    /// Messages delivered to subscribers, summed over the brokers.
    pub messages_delivered: f64,
}

impl LocalCluster {
    /// Probes every process and asks the placement center for its leader (all at once,
    /// each probe bounded by [`probe::PROBE_TIMEOUT`]).
    pub async fn status(&self) -> ClusterStatus {
        let plan = self.plan();
        let every: Vec<_> = Service::ALL
            .iter()
            .flat_map(|&s| plan.nodes(s))
            .map(|n| n.metrics)
            .collect();
        let ready = join_all(every.iter().map(|&addr| probe::readyz(addr)));
        let scrapes = join_all(plan.brokers.iter().map(|n| probe::metrics_text(n.metrics)));
        let leader = self.placement_client().status();
        let (ready, scrapes, leader) = tokio::join!(ready, scrapes, leader);
        let sum = |name| -> f64 {
            scrapes
                .iter()
                .flatten()
                .filter_map(|text| sum_samples(text, name))
                .sum()
        };
        ClusterStatus {
            ready: ready.iter().filter(|r| r.is_ok()).count(),
            total: every.len(),
            leader: leader.ok().map(|s| s.leader_id).filter(|&id| id != 0),
            connections: sum(CONNECTIONS_ACTIVE),
            messages_received: sum(MESSAGES_RECEIVED),
            messages_delivered: sum(MESSAGES_DELIVERED),
        }
    }
}

/// Turns counter totals into per-second rates between two looks.
#[derive(Debug, Default)]
pub struct RateMeter {
    /// The previous look: when, received, delivered.
    last: Option<(Instant, f64, f64)>,
}

impl RateMeter {
    /// Messages per second (in, out) since the previous call; zero on the first call. A
    /// counter that went down (a broker restarted) counts as zero, not negative.
    pub fn update(&mut self, now: Instant, received: f64, delivered: f64) -> (f64, f64) {
        let rates = match self.last {
            Some((then, r0, d0)) => {
                let secs = now.duration_since(then).as_secs_f64();
                if secs <= 0.0 {
                    (0.0, 0.0)
                } else {
                    (
                        (received - r0).max(0.0) / secs,
                        (delivered - d0).max(0.0) / secs,
                    )
                }
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, received, delivered));
        rates
    }
}

/// The one-line summary, e.g.
/// `up 9/9 | leader placement-center-2 | connections 12 | msg/s in 1.2k out 3.4k`.
pub fn render(status: &ClusterStatus, rates: (f64, f64)) -> String {
    let leader = match status.leader {
        Some(id) => Service::PlacementCenter.process_name(id),
        None => "none".to_owned(),
    };
    format!(
        "up {}/{} | leader {leader} | connections {} | msg/s in {} out {}",
        status.ready,
        status.total,
        status.connections,
        human(rates.0),
        human(rates.1)
    )
}

/// `950`, `1.2k`, `3.4M`: short enough for one terminal line.
fn human(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_are_per_second_and_never_negative() {
        let mut meter = RateMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.update(t0, 100.0, 50.0), (0.0, 0.0));
        assert_eq!(
            meter.update(t0 + Duration::from_secs(2), 300.0, 450.0),
            (100.0, 200.0)
        );
        // A broker restarted: its counters start again from zero.
        assert_eq!(
            meter.update(t0 + Duration::from_secs(4), 10.0, 20.0),
            (0.0, 0.0)
        );
        assert_eq!(
            meter.update(t0 + Duration::from_secs(5), 20.0, 20.0),
            (10.0, 0.0)
        );
    }

    #[test]
    fn renders_one_line() {
        let status = ClusterStatus {
            ready: 8,
            total: 9,
            leader: Some(2),
            connections: 12.0,
            messages_received: 0.0,
            messages_delivered: 0.0,
        };
        assert_eq!(
            render(&status, (1234.0, 2.5)),
            "up 8/9 | leader placement-center-2 | connections 12 | msg/s in 1.2k out 2.5"
        );
        let none = ClusterStatus::default();
        assert!(
            render(&none, (0.0, 0.0)).contains("leader none"),
            "{}",
            render(&none, (0.0, 0.0))
        );
        assert_eq!(human(3_400_000.0), "3.4M");
        assert_eq!(human(42.0), "42");
    }
}
