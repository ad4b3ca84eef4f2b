//! Where every process of the local cluster listens and keeps its files: plans built
//! from the port table ([`crate::LOCAL_PORTS`]), or from free ephemeral ports for tests.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ports::{
    NodePorts, Service, LOCAL_ALERTMANAGER_PORT, LOCAL_ALERT_WEBHOOK_PORT, LOCAL_PORTS,
    LOCAL_PROMETHEUS_PORT,
};

/// Everything needed to start a cluster: addresses, directories, patience.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// Root of every data directory, log and generated config file.
    pub root: PathBuf,
    /// Where the `placement-center`, `journal-server` and `mqtt-broker` binaries are.
    pub bin_dir: PathBuf,
    /// Placement-center members (the Raft initial cluster).
    pub placement: Vec<NodePorts>,
    /// Journal nodes.
    pub journal: Vec<NodePorts>,
    /// MQTT brokers.
    pub brokers: Vec<NodePorts>,
    /// Where Prometheus listens when the launcher runs it.
    pub prometheus: SocketAddr,
    /// Where Alertmanager listens when the launcher runs it.
    pub alertmanager: SocketAddr,
    /// Where the launcher takes Alertmanager's webhook notifications.
    pub alert_webhook: SocketAddr,
    /// How long each tier may take to answer 200 on every `/readyz`.
    pub ready_timeout: Duration,
    /// How long a process may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
    /// A broker config file every broker loads first (its flags still set the
    /// addresses and the cluster), e.g. to change queue limits for a benchmark.
    pub broker_config: Option<PathBuf>,
    /// Extra flags for every broker, after the launcher's own (they win).
    pub broker_args: Vec<String>,
    /// Extra environment for every process (e.g. where to export traces).
    pub env: Vec<(String, String)>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl ClusterPlan {
    /// The documented port table, files under `root`, binaries beside this executable.
    pub fn local_default(root: impl Into<PathBuf>) -> ClusterPlan {
        Self::local_with_offset(root, 0).expect("offset 0 cannot overflow")
    }

    /// The port table with `offset` added to every port (a second cluster beside the
    /// first one).
    pub fn local_with_offset(root: impl Into<PathBuf>, offset: u16) -> Result<ClusterPlan> {
        let shift = |port: u16| {
            port.checked_add(offset)
                .map(loopback)
                .ok_or_else(|| Error::Plan(format!("port {port} + offset {offset} > 65535")))
        };
        let monitoring = [
            shift(LOCAL_PROMETHEUS_PORT)?,
            shift(LOCAL_ALERTMANAGER_PORT)?,
            shift(LOCAL_ALERT_WEBHOOK_PORT)?,
        ];
        let mut plan = Self::empty(root.into(), monitoring);
        for row in LOCAL_PORTS {
            let node = NodePorts {
                node_id: row.node_id,
                grpc: shift(row.grpc)?,
                metrics: shift(row.metrics)?,
                mqtt: row.mqtt.map(shift).transpose()?,
            };
            plan.nodes_mut(row.service).push(node);
        }
        Ok(plan)
    }

    /// The same shape as the local plan on free ephemeral ports, for tests. Every port is
    /// held open until all are chosen, so no two are equal.
    pub fn ephemeral(root: impl Into<PathBuf>) -> Result<ClusterPlan> {
        let mut held = Vec::new();
        let mut free = || -> Result<SocketAddr> {
            let listener =
                TcpListener::bind(loopback(0)).map_err(Error::io("binding 127.0.0.1:0"))?;
            let addr = listener.local_addr().map_err(Error::io("local_addr"))?;
            held.push(listener);
            Ok(addr)
        };
        let monitoring = [free()?, free()?, free()?];
        let mut plan = Self::empty(root.into(), monitoring);
        for row in LOCAL_PORTS {
            let node = NodePorts {
                node_id: row.node_id,
                grpc: free()?,
                metrics: free()?,
                mqtt: row.mqtt.map(|_| free()).transpose()?,
            };
            plan.nodes_mut(row.service).push(node);
        }
        Ok(plan)
    }

    /// A plan with no nodes; `monitoring` is Prometheus, Alertmanager, alert webhook.
    fn empty(root: PathBuf, monitoring: [SocketAddr; 3]) -> ClusterPlan {
        let [prometheus, alertmanager, alert_webhook] = monitoring;
        ClusterPlan {
            root,
            bin_dir: crate::binaries::default_bin_dir(),
            placement: Vec::new(),
            journal: Vec::new(),
            brokers: Vec::new(),
            prometheus,
            alertmanager,
            alert_webhook,
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(15),
            broker_config: None,
            broker_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The same plan with the binaries taken from `dir`.
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> ClusterPlan {
        self.bin_dir = dir.into();
        self
    }

    /// The nodes of one service.
    pub fn nodes(&self, service: Service) -> &[NodePorts] {
        match service {
            Service::PlacementCenter => &self.placement,
            Service::JournalServer => &self.journal,
            Service::MqttBroker => &self.brokers,
        }
    }

    fn nodes_mut(&mut self, service: Service) -> &mut Vec<NodePorts> {
        match service {
            Service::PlacementCenter => &mut self.placement,
            Service::JournalServer => &mut self.journal,
            Service::MqttBroker => &mut self.brokers,
        }
    }

    /// Node `id` of `service`, if the plan has it.
    pub fn node(&self, service: Service, id: u64) -> Option<&NodePorts> {
        self.nodes(service).iter().find(|n| n.node_id == id)
    }

    /// `<root>/logs/<name>.log`: a process's stdout and stderr.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }

    /// `<root>/<name>`: a process's data directory (also its working directory).
    pub fn data_dir(&self, service: Service, id: u64) -> PathBuf {
        self.root.join(service.process_name(id))
    }

    /// `<root>/journal-cluster.toml`: the generated config all journal nodes share.
    pub fn journal_config_path(&self) -> PathBuf {
        self.root.join("journal-cluster.toml")
    }

    /// Checks what would otherwise fail confusingly later.
    pub fn validate(&self) -> Result<()> {
        if self.placement.is_empty() {
            return Err(Error::Plan("no placement-center node".into()));
        }
        for service in Service::ALL {
            let nodes = self.nodes(service);
            for (i, n) in nodes.iter().enumerate() {
                if n.node_id == 0 || nodes[..i].iter().any(|m| m.node_id == n.node_id) {
                    return Err(Error::Plan(format!(
                        "{service}: node id {} is 0 or repeated",
                        n.node_id
                    )));
                }
                if service == Service::MqttBroker && n.mqtt.is_none() {
                    return Err(Error::Plan(format!(
                        "{service}-{}: no MQTT address",
                        n.node_id
                    )));
                }
            }
        }
        if !self.brokers.is_empty() && self.journal.is_empty() {
            return Err(Error::Plan("brokers need journal-server nodes".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn local_plan_follows_the_documented_table() {
        let plan = ClusterPlan::local_default("data/x");
        assert_eq!(plan.placement[2].grpc, loopback(1230));
        assert_eq!(plan.journal[0].metrics, loopback(9181));
        assert_eq!(plan.brokers[1].mqtt, Some(loopback(1884)));
        assert_eq!(plan.brokers[1].grpc, loopback(3229));
        assert_eq!(plan.placement[0].mqtt, None);
        assert_eq!(plan.prometheus, loopback(9090));
        assert_eq!(plan.alertmanager, loopback(9094));
        assert_eq!(plan.alert_webhook, loopback(9095));
        plan.validate().unwrap();
    }

    #[test]
    fn offset_shifts_every_port_and_overflow_is_an_error() {
        let plan = ClusterPlan::local_with_offset("r", 100).unwrap();
        assert_eq!(plan.brokers[0].mqtt, Some(loopback(1983)));
        assert_eq!(plan.placement[0].grpc, loopback(1328));
        assert!(matches!(
            ClusterPlan::local_with_offset("r", 60_000),
            Err(Error::Plan(_))
        ));
    }

    #[test]
    fn ephemeral_ports_are_all_distinct() {
        let plan = ClusterPlan::ephemeral("r").unwrap();
        let mut ports: Vec<u16> = Service::ALL
            .iter()
            .flat_map(|&s| plan.nodes(s).to_vec())
            .flat_map(|n| [Some(n.grpc), Some(n.metrics), n.mqtt])
            .flatten()
            .chain([plan.prometheus, plan.alertmanager, plan.alert_webhook])
            .map(|a| a.port())
            .collect();
        assert_eq!(ports.len(), 24);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 24);
    }

    #[test]
    fn validate_rejects_repeated_ids_and_missing_placement() {
        let mut plan = ClusterPlan::local_default("r");
        plan.journal[1].node_id = 1;
        assert!(plan.validate().is_err());
        let mut plan = ClusterPlan::local_default("r");
        plan.placement.clear();
        assert!(plan.validate().is_err());
    }

    #[test]
    fn paths_are_under_the_root() {
        let plan = ClusterPlan::local_default("/tmp/lc");
        assert_eq!(
            plan.log_path("mqtt-broker-1"),
            Path::new("/tmp/lc/logs/mqtt-broker-1.log")
        );
        assert_eq!(
            plan.data_dir(Service::JournalServer, 3),
            Path::new("/tmp/lc/journal-server-3")
        );
    }
}
