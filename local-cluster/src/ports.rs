//! The local cluster's one port table ([`LOCAL_PORTS`], documented in
//! local-cluster/README.md) and the names of the services and processes it lists.

use std::fmt;
use std::net::{SocketAddr, TcpListener};

use crate::error::{Error, Result};

/// The three kinds of process, in start order (stop order is the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// The Raft metadata service; everything else needs it.
    PlacementCenter,
    /// The durable message log.
    JournalServer,
    /// The MQTT brokers; they join through the other two.
    MqttBroker,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 3] = [
        Service::PlacementCenter,
        Service::JournalServer,
        Service::MqttBroker,
    ];

    /// The service name: also its cargo package, binary and `SERVICE_NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Service::PlacementCenter => "placement-center",
            Service::JournalServer => "journal-server",
            Service::MqttBroker => "mqtt-broker",
        }
    }

    /// The process name of node `id`, e.g. `mqtt-broker-2` (its `POD_NAME`, log and data
    /// directory name).
    pub fn process_name(self, id: u64) -> String {
        format!("{}-{id}", self.name())
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The addresses of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePorts {
    /// Its node id (1, 2, 3 in the default plan).
    pub node_id: u64,
    /// gRPC: clients and peers (for brokers: broker-to-broker forwarding).
    pub grpc: SocketAddr,
    /// HTTP `/metrics`, `/healthz`, `/readyz`.
    pub metrics: SocketAddr,
    /// The MQTT TCP listener; brokers only.
    pub mqtt: Option<SocketAddr>,
}

impl NodePorts {
    /// Fails with [`Error::PortInUse`] if one of these addresses cannot be bound now
    /// (std listeners set `SO_REUSEADDR`, so old connections in TIME_WAIT do not count).
    /// `process` names the owner in the error, e.g. `mqtt-broker-2`.
    pub fn check_free(&self, process: &str) -> Result<()> {
        let listeners = [
            ("gRPC", Some(self.grpc)),
            ("metrics", Some(self.metrics)),
            ("MQTT", self.mqtt),
        ];
        for (what, addr) in listeners {
            let Some(addr) = addr else { continue };
            if let Err(e) = TcpListener::bind(addr) {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    return Err(Error::PortInUse {
                        name: format!("{process} {what}"),
                        addr,
                    });
                }
                return Err(Error::io(format!("binding {addr} ({process} {what})"))(e));
            }
        }
        Ok(())
    }
}

/// One row of the local port table (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRow {
    /// Which service.
    pub service: Service,
    /// Which node of it.
    pub node_id: u64,
    /// gRPC port.
    pub grpc: u16,
    /// Metrics and health port.
    pub metrics: u16,
    /// MQTT port (brokers).
    pub mqtt: Option<u16>,
}

const fn row(service: Service, node_id: u64, grpc: u16, metrics: u16, mqtt: u16) -> PortRow {
    let mqtt = if mqtt == 0 { None } else { Some(mqtt) };
    PortRow {
        service,
        node_id,
        grpc,
        metrics,
        mqtt,
    }
}

/// The local cluster's ports: the table in local-cluster/README.md, kept only here.
pub const LOCAL_PORTS: [PortRow; 9] = [
    row(Service::PlacementCenter, 1, 1228, 9081, 0),
    row(Service::PlacementCenter, 2, 1229, 9082, 0),
    row(Service::PlacementCenter, 3, 1230, 9083, 0),
    row(Service::JournalServer, 1, 2228, 9181, 0),
    row(Service::JournalServer, 2, 2229, 9182, 0),
    row(Service::JournalServer, 3, 2230, 9183, 0),
    row(Service::MqttBroker, 1, 3228, 9091, 1883),
    row(Service::MqttBroker, 2, 3229, 9092, 1884),
    row(Service::MqttBroker, 3, 3230, 9093, 1885),
];

/// Prometheus (`--prometheus`) in the local plan.
pub const LOCAL_PROMETHEUS_PORT: u16 = 9090;
/// Alertmanager (`--alertmanager`) in the local plan.
pub const LOCAL_ALERTMANAGER_PORT: u16 = 9094;
/// The webhook the local Alertmanager notifies; `local-cluster` prints what it gets.
pub const LOCAL_ALERT_WEBHOOK_PORT: u16 = 9095;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named() {
        let free = || TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, b, c) = (free(), free(), free());
        let node = NodePorts {
            node_id: 2,
            grpc: a.local_addr().unwrap(),
            metrics: b.local_addr().unwrap(),
            mqtt: Some(c.local_addr().unwrap()),
        };
        drop((a, b));
        let err = node.check_free("mqtt-broker-2").unwrap_err();
        assert!(
            err.to_string()
                .contains("(mqtt-broker-2 MQTT) is already in use"),
            "{err}"
        );
        drop(c);
        node.check_free("mqtt-broker-2").unwrap();
    }
}
