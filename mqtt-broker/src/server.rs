//! Startup and shutdown: bind every listener and the metrics endpoint, run until the
//! shutdown signal, then stop accepting, close connections (MQTT 5 clients get
//! DISCONNECT 0x8B, wills are published) and wait for them to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common_metrics::{Identity, Readiness};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::acl::Acl;
use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::config::{BrokerConfig, ListenerProtocol};
use crate::error::{BrokerError, ConfigError};
use crate::listener::Listener;
use crate::metrics::BrokerMetrics;

/// How long shutdown waits for connections to close before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker with every socket bound, not yet serving.
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<Listener>,
    metrics_listener: Option<TcpListener>,
    registry: Arc<Registry>,
    readiness: Readiness,
}

impl Server {
    /// Loads users and ACLs, registers metrics and binds every address in `config`.
    pub async fn bind(config: BrokerConfig, identity: &Identity) -> Result<Self, BrokerError> {
        config.validate().map_err(|message| ConfigError::Invalid {
            path: "<config>".into(),
            message,
        })?;
        let auth = match &config.auth.password_file {
            Some(path) => Authenticator::from_file(path)?,
            None => Authenticator::default(),
        };
        let acl = match &config.auth.acl_file {
            Some(path) => Acl::from_file(path)?,
            None => Acl::default(),
        };
        let mut registry = common_metrics::new_registry(identity, config.telemetry.identity_labels);
        let metrics = BrokerMetrics::register(common_metrics::namespaced(&mut registry));
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            listeners.push(Listener::bind(l).await?);
        }
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| BrokerError::Bind {
                            what: "metrics endpoint",
                            addr,
                            source,
                        })?,
                )
            }
            None => None,
        };
        Ok(Self {
            broker: Arc::new(Broker::new(config, auth, acl, metrics)),
            listeners,
            metrics_listener,
            registry: Arc::new(registry),
            readiness: Readiness::new(),
        })
    }

    /// The bound MQTT listeners.
    pub fn mqtt_addrs(&self) -> Vec<(ListenerProtocol, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.protocol(), l.local_addr()))
            .collect()
    }

    /// The bound metrics/health address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The shared broker state (for tests and embedding).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let broker = self.broker;
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(broker.config.limits.max_connections));
        for listener in self.listeners {
            tracing::info!(protocol = listener.protocol().as_str(), addr = %listener.local_addr(), "MQTT listener ready");
            tokio::spawn(listener.run(broker.clone(), limit.clone(), tracker.clone()));
        }
        tokio::spawn(crate::sys::run(broker.clone()));
        let http = self.metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics and health endpoint ready");
            }
            let stop = broker.shutdown.clone();
            tokio::spawn(common_metrics::serve(
                listener,
                self.registry.clone(),
                self.readiness.clone(),
                async move { stop.cancelled().await },
            ))
        });
        self.readiness.set_ready(true);

        shutdown.await;
        tracing::info!("shutting down: closing listeners and connections");
        self.readiness.set_not_ready("shutting down");
        broker.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = tracker.len(),
                "connections still open after the drain timeout"
            );
        }
        if let Some(http) = http {
            let _ = http.await;
        }
        tracing::info!("broker stopped");
    }
}
