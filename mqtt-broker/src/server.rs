//! Startup and shutdown: bind every listener and the metrics endpoint (and, in a
//! cluster, the broker-to-broker gRPC service), join the cluster, run until the shutdown
//! signal, then leave the cluster, stop accepting, close connections (MQTT 5 clients get
//! DISCONNECT 0x8B, wills are published) and wait for them to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common_metrics::grpc::{GrpcServerLayer, GrpcServerMetrics};
use common_metrics::{Identity, Readiness};
use placement_client::NodeInfo;
use prometheus_client::registry::Registry;
use robustmq_proto::broker::broker_internal_server::BrokerInternalServer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::acl::Acl;
use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::cluster::forward::{FORWARD_CONNECTION_WINDOW, FORWARD_STREAM_WINDOW};
use crate::cluster::service::BrokerInternalService;
use crate::cluster::Cluster;
use crate::config::{BrokerConfig, ListenerProtocol};
use crate::error::{BrokerError, ConfigError};
use crate::listener::Listener;
use crate::metrics::BrokerMetrics;

/// How long shutdown waits for connections to close before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the broker-to-broker gRPC service to finish gracefully.
const GRPC_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// A broker with every socket bound, not yet serving.
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<Listener>,
    metrics_listener: Option<TcpListener>,
    /// The broker-to-broker gRPC listener, in a cluster.
    grpc_listener: Option<TcpListener>,
    grpc_metrics: Option<GrpcServerMetrics>,
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
        // With metrics off, the broker's metrics go to a registry nobody scrapes (the
        // handles must exist) and latencies are not observed; /metrics keeps the
        // process and runtime metrics.
        let recording = config.telemetry.metrics_enabled;
        let mut unexported = prometheus_client::registry::Registry::default();
        let root = if recording {
            common_metrics::namespaced(&mut registry)
        } else {
            &mut unexported
        };
        let mut metrics = BrokerMetrics::register(root);
        metrics.recording = recording;
        let (cluster, grpc_listener, grpc_metrics) = if config.cluster.enabled() {
            let addr = config.cluster.grpc_listen;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| BrokerError::Bind {
                    what: "broker gRPC listener",
                    addr,
                    source,
                })?;
            let cluster =
                Cluster::new(&config.cluster, root).map_err(|message| ConfigError::Invalid {
                    path: "<config>".into(),
                    message,
                })?;
            let grpc_metrics = GrpcServerMetrics::register(root);
            (Some(Arc::new(cluster)), Some(listener), Some(grpc_metrics))
        } else {
            (None, None, None)
        };
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
        let broker = Arc::new(Broker::new(config, auth, acl, metrics, cluster));
        if recording {
            crate::session::metrics::SessionCollector::register(
                common_metrics::namespaced(&mut registry),
                &broker,
            );
        }
        Ok(Self {
            broker,
            listeners,
            metrics_listener,
            grpc_listener,
            grpc_metrics,
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

    /// The bound broker-to-broker gRPC address, in a cluster.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The shared broker state (for tests and embedding).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let metrics_addr = self.metrics_addr();
        let mqtt_addr = self.listeners.first().map(|l| l.local_addr());
        let broker = self.broker;
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(broker.config.limits.max_connections));
        // In a cluster, clients are accepted once the broker has joined (they wait in the
        // listen backlog meanwhile): sessions and routes need the node's epoch and lease.
        let accept = {
            let (broker, tracker) = (broker.clone(), tracker.clone());
            move || {
                for listener in self.listeners {
                    tracing::info!(protocol = listener.protocol().as_str(), addr = %listener.local_addr(), "MQTT listener ready");
                    tokio::spawn(listener.run(broker.clone(), limit.clone(), tracker.clone()));
                }
            }
        };
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
        let grpc = self
            .grpc_listener
            .zip(self.grpc_metrics.clone())
            .map(|(listener, metrics)| serve_grpc(listener, metrics, broker.clone()));
        let joined = match &broker.cluster {
            None => {
                accept();
                self.readiness.set_ready(true);
                None
            }
            Some(cluster) => {
                let info = node_info(
                    &broker,
                    grpc.as_ref().and_then(|g| g.addr),
                    mqtt_addr,
                    metrics_addr,
                );
                let (cluster, broker, readiness) =
                    (cluster.clone(), broker.clone(), self.readiness.clone());
                readiness.set_not_ready("joining the cluster");
                Some(tokio::spawn(async move {
                    match cluster.join(&broker, info).await {
                        Ok(()) => {
                            tracing::info!(
                                node_id = cluster.node_id(),
                                epoch = cluster.epoch(),
                                "joined the cluster"
                            );
                            accept();
                            readiness.set_ready(true);
                        }
                        Err(e) => tracing::warn!(error = %e, "did not join the cluster"),
                    }
                }))
            }
        };

        shutdown.await;
        tracing::info!("shutting down: leaving the cluster, closing listeners and connections");
        self.readiness.set_not_ready("shutting down");
        if let Some(cluster) = &broker.cluster {
            // Deregistering first takes this node's routes away, so peers stop
            // forwarding to a broker that is closing its connections.
            cluster.leave().await;
        }
        if let Some(joined) = joined {
            joined.abort();
        }
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
        if let Some(grpc) = grpc {
            // Graceful: in-flight calls finish. Peers' forward streams end once they
            // see this node leave; a peer that has not noticed yet (a slow watch after
            // a placement-center leader change) must not hold the shutdown past the
            // orchestrator's grace period, so what is still open then is cut.
            grpc.stop.cancel();
            let mut task = grpc.task;
            if tokio::time::timeout(GRPC_STOP_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    timeout = ?GRPC_STOP_TIMEOUT,
                    "broker-to-broker streams still open; closing them"
                );
                task.abort();
            }
        }
        tracing::info!("broker stopped");
    }
}

/// The running broker-to-broker gRPC server.
struct GrpcServer {
    addr: Option<SocketAddr>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Serves `BrokerInternal` (and gRPC health) on `listener` until stopped.
fn serve_grpc(
    listener: TcpListener,
    metrics: GrpcServerMetrics,
    broker: Arc<Broker>,
) -> GrpcServer {
    let addr = listener.local_addr().ok();
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    let task = tokio::spawn(async move {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<BrokerInternalServer<BrokerInternalService>>()
            .await;
        let internal = BrokerInternalServer::new(BrokerInternalService::new(broker))
            .max_decoding_message_size(usize::MAX);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        match addr {
            Some(addr) => tracing::info!(%addr, "broker gRPC service ready"),
            None => tracing::info!("broker gRPC service ready"),
        }
        let served = tonic::transport::Server::builder()
            // Forward streams carry batches of ~100 KiB; HTTP/2's default 64 KiB window
            // would stop the sender for a window update several times per batch.
            .initial_stream_window_size(FORWARD_STREAM_WINDOW)
            .initial_connection_window_size(FORWARD_CONNECTION_WINDOW)
            .layer(GrpcServerLayer::new(metrics))
            .add_service(health_service)
            .add_service(internal)
            .serve_with_incoming_shutdown(incoming, until.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "broker gRPC service failed");
        }
    });
    GrpcServer { addr, stop, task }
}

/// What this broker publishes about itself in the node registry.
fn node_info(
    broker: &Broker,
    grpc: Option<SocketAddr>,
    mqtt: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
) -> NodeInfo {
    let cluster = &broker.config.cluster;
    let grpc = cluster
        .advertise_grpc
        .clone()
        .or_else(|| grpc.map(|a| a.to_string()))
        .unwrap_or_default();
    let mqtt = cluster
        .advertise_mqtt
        .clone()
        .or_else(|| mqtt.map(|a| a.to_string()));
    NodeInfo {
        kind: crate::cluster::BROKER_KIND.into(),
        id: cluster.node_id,
        grpc,
        metrics: metrics.map(|a| a.to_string()),
        mqtt,
        version: env!("CARGO_PKG_VERSION").into(),
    }
}
