//! Broker configuration: a TOML file, overridden by flags (see `main.rs`).
//!
//! Every field has a default, documented in `mqtt-broker/config/mqtt-broker.example.toml`.
//! Unknown fields are errors, so a typo is reported with the field and file instead of
//! being silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;
use crate::message_trace::MessageTracingConfig;

/// The whole broker configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// MQTT listeners. Default: one TCP listener on 127.0.0.1:1883.
    pub listeners: Vec<ListenerConfig>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz; none to disable.
    pub metrics_listen: Option<SocketAddr>,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub sys: SysConfig,
    pub runtime: RuntimeConfig,
    /// Cluster membership, routing and forwarding; off unless placement endpoints are set.
    pub cluster: ClusterConfig,
    pub telemetry: common_metrics::TelemetryConfig,
    /// Traces of messages (spans per publish, forward and delivery).
    pub message_tracing: MessageTracingConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::tcp(
                "127.0.0.1:1883".parse().expect("valid address"),
            )],
            metrics_listen: Some("127.0.0.1:9091".parse().expect("valid address")),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            sys: SysConfig::default(),
            runtime: RuntimeConfig::default(),
            cluster: ClusterConfig::default(),
            telemetry: Default::default(),
            message_tracing: Default::default(),
        }
    }
}

/// Transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl ListenerProtocol {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    fn needs_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

/// One MQTT listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: ListenerProtocol,
    pub bind: SocketAddr,
    /// Accept clients without username/password. Default: only on loopback addresses.
    pub allow_anonymous: Option<bool>,
    /// PEM certificate chain, for `tls` and `wss`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key, for `tls` and `wss`.
    pub tls_key: Option<PathBuf>,
    /// HTTP path of the WebSocket endpoint, for `ws` and `wss`.
    #[serde(default = "default_ws_path")]
    pub ws_path: String,
}

fn default_ws_path() -> String {
    "/mqtt".into()
}

impl ListenerConfig {
    /// A plain TCP listener.
    pub fn tcp(bind: SocketAddr) -> Self {
        Self {
            protocol: ListenerProtocol::Tcp,
            bind,
            allow_anonymous: None,
            tls_cert: None,
            tls_key: None,
            ws_path: default_ws_path(),
        }
    }

    /// Whether anonymous clients are accepted here.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or_else(|| self.bind.ip().is_loopback())
    }
}

/// Protocol limits and queue sizes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections beyond this are refused at accept.
    pub max_connections: usize,
    /// Largest packet accepted from a client, in bytes (advertised to MQTT 5 clients).
    pub max_packet_size: u32,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Largest keep-alive accepted; MQTT 5 clients asking for more (or for 0) are told
    /// this value as Server Keep Alive. 0 means no limit.
    pub max_keep_alive_secs: u16,
    /// QoS 2 messages a client may have unreleased at once (our Receive Maximum).
    pub receive_maximum: u16,
    /// QoS 1/2 deliveries in flight per session (also capped by the client's Receive Maximum).
    pub max_inflight: u16,
    /// Deliveries queued per session; beyond it new deliveries are dropped and counted.
    pub max_queued_messages: usize,
    /// Also queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0_offline: bool,
    /// Topic aliases a client may use (our Topic Alias Maximum); 0 disables them.
    pub topic_alias_maximum: u16,
    /// Longest session expiry interval granted, in seconds.
    pub max_session_expiry_secs: u32,
    /// Expiry of MQTT 3.x persistent sessions (clean session = 0), in seconds; none = never.
    pub v3_session_expiry_secs: Option<u32>,
    /// Highest QoS accepted (0, 1 or 2).
    pub maximum_qos: u8,
    pub retain_available: bool,
    pub wildcard_subscription_available: bool,
    pub shared_subscription_available: bool,
    pub subscription_identifiers_available: bool,
    /// Longest client identifier accepted, in bytes.
    pub max_client_id_len: usize,
    /// Response Information returned to MQTT 5 clients that set Request Response
    /// Information: the prefix they should build response topics under. None: not offered.
    pub response_information: Option<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_packet_size: 1024 * 1024,
            connect_timeout_secs: 10,
            max_keep_alive_secs: 0,
            receive_maximum: 1024,
            max_inflight: 64,
            max_queued_messages: 1000,
            queue_qos0_offline: false,
            topic_alias_maximum: 64,
            max_session_expiry_secs: u32::MAX,
            v3_session_expiry_secs: None,
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: true,
            max_client_id_len: 256,
            response_information: None,
        }
    }
}

/// Authentication and authorisation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `username:argon2-PHC-hash` lines (make them with `mqtt-broker passwd`).
    pub password_file: Option<PathBuf>,
    /// ACL rules (TOML); without it every authenticated client may publish and subscribe anywhere.
    pub acl_file: Option<PathBuf>,
}

/// `$SYS/broker/...` statistics topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysConfig {
    /// Seconds between updates; 0 disables them.
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self { interval_secs: 10 }
    }
}

/// The async runtime that serves the connections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 (the default) means one per CPU. Fewer than the CPUs leaves
    /// room for other processes on the machine (a load generator, the other services
    /// of a local cluster) and spares the cross-thread wake-ups of a runtime with more
    /// workers than it has work for.
    pub worker_threads: usize,
}

/// How this broker joins a cluster. With no `placement_endpoints` the broker runs
/// standalone and none of the rest applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This broker's node id, unique among the cluster's brokers (not 0).
    pub node_id: u64,
    /// The placement center's members (`host:port`, gRPC). Empty: standalone.
    pub placement_endpoints: Vec<String>,
    /// Where the broker-to-broker gRPC service listens.
    pub grpc_listen: SocketAddr,
    /// The gRPC address other brokers use to reach this one (`host:port`); default: the
    /// bound `grpc_listen` address (set it when listening on 0.0.0.0).
    pub advertise_grpc: Option<String>,
    /// The MQTT address shown to operators in the node registry; default: the first
    /// listener's address.
    pub advertise_mqtt: Option<String>,
    /// Seconds the registration lease lives without keep-alives: how long a crashed
    /// broker's routes linger before the cluster notices.
    pub lease_ttl_secs: i64,
    /// Messages queued per peer for forwarding. QoS 0 beyond it is dropped (counted and
    /// logged) once `forward_qos0_wait_ms` has passed; QoS 1/2 publishers wait for room
    /// (backpressure).
    pub forward_queue: usize,
    /// Milliseconds a QoS 0 message may wait for room in a full forward queue before it
    /// is dropped. While it waits, its publisher's connection reads nothing more, so an
    /// overloaded peer slows its publishers down instead of making this broker read and
    /// route messages only to drop them (which left a cross-node flood with a third less
    /// delivered than a paced one). 0: drop at once.
    pub forward_qos0_wait_ms: u64,
    /// Messages sent to a peer in one Forward call at most.
    pub forward_batch: usize,
    /// Seconds a placement-center call (route or retained update) may take, retries included.
    pub placement_timeout_secs: u64,
    /// Persistent sessions survive this broker's crash: their subscriptions and QoS 1/2
    /// deliveries go to the journal (nodes found through the placement center), and a
    /// publisher's PUBACK/PUBREC waits until they are there and every peer that got the
    /// message answered.
    pub durability: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            placement_endpoints: Vec::new(),
            grpc_listen: "127.0.0.1:3228".parse().expect("valid address"),
            advertise_grpc: None,
            advertise_mqtt: None,
            lease_ttl_secs: 5,
            forward_queue: 10_000,
            forward_qos0_wait_ms: 5,
            forward_batch: 1024,
            placement_timeout_secs: 10,
            durability: true,
        }
    }
}

impl ClusterConfig {
    /// True when the broker is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.placement_endpoints.is_empty()
    }
}

impl BrokerConfig {
    /// Reads and validates a TOML file. Errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err("listeners: at least one listener is required".into());
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.protocol.needs_tls() && (l.tls_cert.is_none() || l.tls_key.is_none()) {
                return Err(format!(
                    "listeners[{i}]: protocol {} needs tls_cert and tls_key",
                    l.protocol.as_str()
                ));
            }
            if !l.ws_path.starts_with('/') {
                return Err(format!("listeners[{i}].ws_path: must start with '/'"));
            }
        }
        let limits = &self.limits;
        if limits.maximum_qos > 2 {
            return Err("limits.maximum_qos: must be 0, 1 or 2".into());
        }
        if limits.receive_maximum == 0 || limits.max_inflight == 0 {
            return Err(
                "limits.receive_maximum and limits.max_inflight: must be at least 1".into(),
            );
        }
        if limits.max_packet_size < 64 {
            return Err("limits.max_packet_size: must be at least 64 bytes".into());
        }
        if limits.max_queued_messages == 0 {
            return Err("limits.max_queued_messages: must be at least 1".into());
        }
        self.message_tracing.validate()?;
        let cluster = &self.cluster;
        if cluster.enabled() {
            if cluster.node_id == 0 {
                return Err("cluster.node_id: must not be 0".into());
            }
            if cluster.lease_ttl_secs < 1 {
                return Err("cluster.lease_ttl_secs: must be at least 1".into());
            }
            if cluster.forward_queue == 0 || cluster.forward_batch == 0 {
                return Err(
                    "cluster.forward_queue and cluster.forward_batch: must be at least 1".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_config_is_a_cluster_member_on_every_address() {
        // deploy/k8s/base/config/mqtt-broker.toml: the StatefulSet and compose mount it.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/k8s/base/config/mqtt-broker.toml");
        let c = BrokerConfig::from_file(&path).expect("the deployed config is valid");
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.placement_endpoints.len(), 3);
        assert!(c.listeners.iter().all(|l| l.bind.ip().is_unspecified()));
        assert!(c.listeners.iter().all(|l| l.anonymous_allowed()));
    }

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mqtt-broker.example.toml");
        let c = BrokerConfig::from_file(&path).expect("example config is valid");
        let d = BrokerConfig::default();
        assert_eq!(c.limits.max_packet_size, d.limits.max_packet_size);
        assert_eq!(c.limits.max_queued_messages, d.limits.max_queued_messages);
        assert_eq!(c.sys.interval_secs, d.sys.interval_secs);
        assert_eq!(c.runtime.worker_threads, d.runtime.worker_threads);
    }

    #[test]
    fn unknown_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, "[limits]\nmax_pakcet_size = 10\n").unwrap();
        let err = BrokerConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("max_pakcet_size") && err.contains("b.toml"),
            "{err}"
        );
    }

    #[test]
    fn tls_listener_without_cert_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(
            &path,
            "[[listeners]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:8883\"\n",
        )
        .unwrap();
        let err = BrokerConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("listeners[0]") && err.contains("tls_cert"),
            "{err}"
        );
    }

    #[test]
    fn anonymous_defaults_to_loopback_only() {
        assert!(ListenerConfig::tcp("127.0.0.1:1".parse().unwrap()).anonymous_allowed());
        assert!(!ListenerConfig::tcp("0.0.0.0:1".parse().unwrap()).anonymous_allowed());
    }
}
