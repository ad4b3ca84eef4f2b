//! A running placement-center member: storage, Raft, the gRPC server (client services,
//! peer service, health), the metrics endpoint and the background loops; bootstrap and
//! graceful shutdown.

mod batch;
pub mod core;
pub mod metrics;
pub mod tasks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_metrics::grpc::{GrpcClientMetrics, GrpcServerLayer, GrpcServerMetrics};
use common_metrics::{Identity, Readiness};
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use robustmq_proto::placement::cluster_server::ClusterServer;
use robustmq_proto::placement::kv_server::KvServer;
use robustmq_proto::placement::lease_server::LeaseServer;
use robustmq_proto::placement::raft_peer_server::RaftPeerServer;
use robustmq_proto::placement::watch_server::WatchServer;
use rocksdb::DB;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::core::{Core, CoreParts, Limits};
use crate::config::PlacementConfig;
use crate::error::{Error, Result};
use crate::kv::{KvReader, LeaseClock, WatchHub};
use crate::raft::network::{NetworkSwitch, PeerNetwork, ReplicationMetrics, MAX_PEER_MESSAGE};
use crate::raft::peer_service::RaftPeerService;
use crate::raft::{NodeId, Raft};
use crate::service::{ClusterService, KvService, LeaseService, WatchService};
use crate::store::{open_db, LogStore, StateMachineStore, StorageMetrics};

/// How long shutdown waits for in-flight requests before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A started member. Dropping it without [`Node::shutdown`] leaves its tasks running.
pub struct Node {
    core: Arc<Core>,
    grpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    readiness: Readiness,
    /// Set to `true` to stop servers, streams and loops.
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    http: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// Kept to wait, at shutdown, until every other user has let go of the database.
    db: Arc<DB>,
}

impl Node {
    /// Binds the configured addresses and starts.
    pub async fn start(config: PlacementConfig, identity: &Identity) -> Result<Node> {
        let grpc = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                what: "gRPC",
                addr: config.listen,
                source,
            })?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        what: "metrics endpoint",
                        addr,
                        source,
                    })?,
            ),
            None => None,
        };
        Self::start_with_listeners(config, identity, grpc, metrics).await
    }

    /// Starts on listeners bound by the caller (tests bind port 0 first to learn the
    /// addresses that go into the initial cluster).
    pub async fn start_with_listeners(
        config: PlacementConfig,
        identity: &Identity,
        grpc: TcpListener,
        metrics_listener: Option<TcpListener>,
    ) -> Result<Node> {
        config.validate().map_err(|message| Error::Config {
            path: "<config>".into(),
            message,
        })?;
        let members = config.members().map_err(|message| Error::Config {
            path: "<config>".into(),
            message,
        })?;
        let raft_config = config.openraft().map_err(|message| Error::Config {
            path: "<config>".into(),
            message,
        })?;
        let grpc_addr = grpc.local_addr()?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;

        let mut registry = common_metrics::new_registry(identity, config.telemetry.identity_labels);
        let root = common_metrics::namespaced(&mut registry);
        let storage_metrics = StorageMetrics::register(root);
        common_metrics::FilesystemCollector::register(root, &config.data_dir);
        let replication_metrics = ReplicationMetrics::register(root);
        let gauges = metrics::RaftGauges::register(root);
        let grpc_metrics = GrpcServerMetrics::register(root);
        let client_metrics = GrpcClientMetrics::register(root);

        let db = open_db(&config.data_dir)?;
        let hub = Arc::new(WatchHub::new(config.watch_history, 0));
        let leases = Arc::new(LeaseClock::new());
        let log_store = LogStore::new(db.clone(), storage_metrics.clone())?;
        let committed = log_store.committed_index();
        let state_machine = StateMachineStore::new(
            db.clone(),
            config.data_dir.join("snapshot"),
            hub.clone(),
            leases.clone(),
            storage_metrics.clone(),
        )?;
        let switch = NetworkSwitch::default();
        let network = PeerNetwork {
            switch: switch.clone(),
            metrics: replication_metrics,
        };
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        bootstrap(&raft, config.node_id, &members).await?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let core = Core::start(CoreParts {
            id: config.node_id,
            raft,
            reader: KvReader::new(db.clone()),
            hub,
            leases,
            switch,
            limits: Limits {
                max_value_size: config.max_value_size,
                max_key_size: config.max_key_size,
                request_timeout: Duration::from_millis(config.raft.request_timeout_ms),
            },
            max_batch: config.raft.max_batch,
            proposals: gauges.proposals.clone(),
            shutdown: shutdown_rx.clone(),
            committed,
            client_metrics,
        });

        let readiness = Readiness::new();
        readiness.set_not_ready("no raft leader known");
        let tasks = vec![
            tokio::spawn(tasks::run_raft_metrics(
                core.clone(),
                gauges,
                readiness.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(tasks::run_lease_expiry(core.clone(), shutdown_rx.clone())),
            tokio::spawn(tasks::run_disk_usage(
                config.data_dir.clone(),
                storage_metrics.disk_usage.clone(),
                shutdown_rx.clone(),
            )),
        ];
        let server = tokio::spawn(serve_grpc(
            core.clone(),
            grpc,
            grpc_metrics,
            shutdown_rx.clone(),
        ));
        let registry = Arc::new(registry);
        let http = metrics_listener.map(|listener| {
            let mut stop = shutdown_rx.clone();
            let readiness = readiness.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = common_metrics::serve(listener, registry, readiness, stopped).await
                {
                    tracing::error!(error = %e, "metrics endpoint failed");
                }
            })
        });
        tracing::info!(node = config.node_id, grpc = %grpc_addr, metrics = ?metrics_addr, members = ?members, "placement center started");
        Ok(Node {
            core,
            grpc_addr,
            metrics_addr,
            readiness,
            shutdown,
            server,
            http,
            tasks,
            db,
        })
    }

    /// The gRPC address (clients and peers).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The metrics/health address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// The shared core (tests and embedding).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Whether `/readyz` reports ready (a leader is known).
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Cuts this node off from its peers both ways (tests simulate a partition).
    pub fn set_isolated(&self, isolated: bool) {
        self.core.switch.set_isolated(isolated);
    }

    /// Stops serving, shuts Raft down, waits for the database to be released and flushes it.
    pub async fn shutdown(self) {
        tracing::info!(node = self.core.id, "shutting down");
        self.readiness.set_not_ready("shutting down");
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("gRPC server still draining after the timeout; stopping it");
            server.abort();
            let _ = server.await;
        }
        if let Err(e) = self.core.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        if let Some(http) = self.http {
            let _ = http.await;
        }
        drop(self.core);
        // Raft's storage tasks and in-flight handlers let go of the database shortly after
        // Raft stops; a restart in the same process needs its lock released.
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while Arc::strong_count(&self.db) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(error = %e, "flushing the RocksDB WAL");
        }
        if Arc::strong_count(&self.db) > 1 {
            tracing::warn!(
                users = Arc::strong_count(&self.db),
                "database still in use after shutdown"
            );
        }
        tracing::info!("placement center stopped");
    }
}

/// Initializes a pristine member of the initial cluster with every initial member.
/// openraft makes this safe on every member at once (identical membership) and refuses
/// it, harmlessly, on a node that already has a log: a restarted node just rejoins.
async fn bootstrap(raft: &Raft, id: NodeId, members: &BTreeMap<NodeId, String>) -> Result<()> {
    if !members.contains_key(&id) {
        tracing::info!(
            node = id,
            "not in the initial cluster: waiting to be added as a learner"
        );
        return Ok(());
    }
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match raft.initialize(nodes).await {
        Ok(()) => tracing::info!(node = id, "initialized the cluster membership"),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::info!(node = id, "existing Raft state found: rejoining")
        }
        Err(e) => return Err(Error::Raft(format!("initialize: {e}"))),
    }
    Ok(())
}

/// Serves every gRPC service on `listener` until shutdown.
async fn serve_grpc(
    core: Arc<Core>,
    listener: TcpListener,
    metrics: GrpcServerMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<KvServer<KvService>>().await;
    health.set_serving::<LeaseServer<LeaseService>>().await;
    health.set_serving::<WatchServer<WatchService>>().await;
    health.set_serving::<ClusterServer<ClusterService>>().await;
    let peer = RaftPeerServer::new(RaftPeerService::new(core.clone()))
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    let result = tonic::transport::Server::builder()
        .layer(GrpcServerLayer::new(metrics))
        .add_service(health_service)
        .add_service(KvServer::new(KvService::new(core.clone())))
        .add_service(LeaseServer::new(LeaseService::new(core.clone())))
        .add_service(WatchServer::new(WatchService::new(core.clone())))
        .add_service(ClusterServer::new(ClusterService::new(core.clone())))
        .add_service(peer)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = shutdown.wait_for(|s| *s).await;
            },
        )
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "gRPC server failed");
    }
}
