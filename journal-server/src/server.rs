//! Startup and shutdown: register metrics, open (recover) every shard, bind the gRPC and
//! metrics listeners, serve (and register in the placement center, when configured) until
//! the shutdown signal, then deregister, drain and close the shards (their writers sync
//! what they wrote).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common_metrics::grpc::{GrpcClientMetrics, GrpcServerLayer, GrpcServerMetrics};
use common_metrics::{Identity, Readiness};
use prometheus_client::registry::Registry;
use robustmq_proto::journal::journal_peer_server::JournalPeerServer;
use robustmq_proto::journal::journal_server::JournalServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::JournalConfig;
use crate::error::{ConfigError, JournalError, Result};
use crate::membership::Membership;
use crate::metrics::{JournalCollector, JournalMetrics};
use crate::node::{JournalNode, ShardMap};
use crate::placement::{Placement, StaticPlacement};
use crate::replication::peers::Peers;
use crate::service::peer::JournalPeerService;
use crate::service::JournalService;

/// How long shutdown waits for in-flight requests before closing the shards anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A journal node with its shards open and its sockets bound, not yet serving.
pub struct Server {
    node: Arc<JournalNode>,
    grpc_listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    registry: Arc<Registry>,
    readiness: Readiness,
    grpc_metrics: GrpcServerMetrics,
    /// Registration in the placement center, started once serving; `None`: not configured.
    membership: Option<Membership>,
}

impl Server {
    /// Registers metrics, binds the listeners and opens every shard (recovery included).
    pub async fn bind(mut config: JournalConfig, identity: &Identity) -> Result<Self> {
        config.validate().map_err(|message| ConfigError::Invalid {
            path: "<config>".into(),
            message,
        })?;
        let mut registry = common_metrics::new_registry(identity, config.telemetry.identity_labels);
        let root = common_metrics::namespaced(&mut registry);
        let grpc_metrics = GrpcServerMetrics::register(root);
        let client_metrics = GrpcClientMetrics::register(root);
        let metrics = if config.telemetry.metrics_enabled {
            JournalMetrics::register(root)
        } else {
            JournalMetrics::default()
        };
        let shards = Arc::new(ShardMap::default());
        if config.telemetry.metrics_enabled {
            root.register_collector(Box::new(JournalCollector::new(shards.clone())));
            common_metrics::FilesystemCollector::register(root, &config.data_dir);
        }

        let grpc_listener = bind(config.listen, "gRPC listener").await?;
        // With port 0 (tests), the address peers and leader hints use is the bound one.
        config.listen = grpc_listener
            .local_addr()
            .map_err(|source| JournalError::Bind {
                what: "gRPC listener",
                addr: config.listen,
                source,
            })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind(addr, "metrics endpoint").await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let membership =
            Membership::new(&config, config.listen, metrics_addr, client_metrics.clone())?;
        let placement: Arc<dyn Placement> = Arc::new(StaticPlacement::from_config(&config));
        let peers = Arc::new(Peers::new(
            placement.nodes(),
            client_metrics,
            config.replication.peer_timeout(),
        ));
        let config = Arc::new(config);
        let node = JournalNode::open(config, placement, peers, shards, metrics).await?;
        Ok(Self {
            node,
            grpc_listener,
            metrics_listener,
            registry: Arc::new(registry),
            readiness: Readiness::new(),
            grpc_metrics,
            membership,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound metrics/health address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The node (for tests and embedding).
    pub fn node(&self) -> &Arc<JournalNode> {
        &self.node
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let stop = CancellationToken::new();
        let node = self.node;
        let http = self.metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics and health endpoint ready");
            }
            let stop = stop.clone();
            tokio::spawn(common_metrics::serve(
                listener,
                self.registry.clone(),
                self.readiness.clone(),
                async move { stop.cancelled().await },
            ))
        });
        let retention = tokio::spawn(node.clone().run_retention(stop.clone()));

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<JournalServer<JournalService>>().await;
        health
            .set_serving::<JournalPeerServer<JournalPeerService>>()
            .await;
        let max_message = node.config().storage.max_append_bytes + 1024 * 1024;
        let journal = JournalServer::new(JournalService::new(node.clone(), stop.clone()))
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(usize::MAX);
        let peer = JournalPeerServer::new(JournalPeerService::new(node.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let grpc_addr = self.grpc_listener.local_addr().ok();
        let incoming = tonic::transport::server::TcpIncoming::from(self.grpc_listener)
            .with_nodelay(Some(true));
        let drained = CancellationToken::new();
        let serve = tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new(self.grpc_metrics))
            .add_service(health_service)
            .add_service(journal)
            .add_service(peer)
            .serve_with_incoming_shutdown(incoming, drained.clone().cancelled_owned());
        tokio::pin!(serve);
        tracing::info!(addr = ?grpc_addr, node_id = node.node_id(), "journal server ready");
        // With a placement center, ready only once registered there.
        let joining = match self.membership {
            Some(membership) => Some(membership.start(self.readiness.clone())),
            None => {
                self.readiness.set_ready(true);
                None
            }
        };

        let served = tokio::select! {
            result = &mut serve => Some(result),
            _ = shutdown => None,
        };
        tracing::info!("shutting down: draining requests, then closing shards");
        self.readiness.set_not_ready("shutting down");
        // Leave the cluster first, so that nobody is sent here while we drain.
        if let Some(joining) = joining {
            joining.leave().await;
        }
        health
            .set_not_serving::<JournalServer<JournalService>>()
            .await;
        stop.cancel(); // ends subscriptions, retention, the metrics endpoint
        drained.cancel();
        let result = match served {
            Some(result) => result,
            None => match tokio::time::timeout(DRAIN_TIMEOUT, &mut serve).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("requests still running after the drain timeout");
                    Ok(())
                }
            },
        };
        // Shards close only after the gRPC drain: appends in flight still need their
        // replication to finish, and closing syncs every writer last.
        node.close().await;
        let _ = retention.await;
        if let Some(http) = http {
            let _ = http.await;
        }
        tracing::info!("journal server stopped");
        result.map_err(|e| JournalError::Unavailable(format!("gRPC server: {e}")))
    }
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| JournalError::Bind { what, addr, source })
}
