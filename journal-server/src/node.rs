//! Every shard replica on this node, and the cluster-level operations on shards:
//! create (on every replica), delete (on every replica), list, retention.
//!
//! On disk: `<data_dir>/shards/<name>/` holds `shard.toml` (name, replicas), the
//! segments, `leader-epoch.checkpoint` and `replica.state`. A shard exists on this node
//! exactly when its directory has a `shard.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use robustmq_proto::journal::{CreateReplicaRequest, DeleteReplicaRequest};
use tokio_util::sync::CancellationToken;

use crate::config::{validate_shard_name, JournalConfig, NodeId};
use crate::error::{JournalError, Result, StorageError};
use crate::fsutil::{sync_dir, write_atomic};
use crate::metrics::JournalMetrics;
use crate::placement::{Placement, ShardSpec};
use crate::replication::peers::Peers;
use crate::shard::{Shard, ShardMeta, ShardStatus, META_FILE};

/// The open shards by name; shared with the metrics collector.
#[derive(Debug, Default)]
pub struct ShardMap {
    inner: RwLock<BTreeMap<String, Arc<Shard>>>,
}

impl ShardMap {
    pub fn get(&self, name: &str) -> Option<Arc<Shard>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<Shard>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn insert(&self, shard: Arc<Shard>) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shard.name().to_owned(), shard);
    }

    fn remove(&self, name: &str) -> Option<Arc<Shard>> {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }
}

/// This journal node: its shards and its view of the cluster.
#[derive(Debug)]
pub struct JournalNode {
    config: Arc<JournalConfig>,
    placement: Arc<dyn Placement>,
    peers: Arc<Peers>,
    shards: Arc<ShardMap>,
    metrics: JournalMetrics,
    /// Serialises create and delete on this node.
    admin: tokio::sync::Mutex<()>,
}

impl JournalNode {
    /// Opens every shard found under the data directory, then creates the configured
    /// shards that hold a replica here and do not exist yet.
    pub async fn open(
        config: Arc<JournalConfig>,
        placement: Arc<dyn Placement>,
        peers: Arc<Peers>,
        shards: Arc<ShardMap>,
        metrics: JournalMetrics,
    ) -> Result<Arc<Self>> {
        let node = Arc::new(Self {
            config,
            placement,
            peers,
            shards,
            metrics,
            admin: tokio::sync::Mutex::new(()),
        });
        let root = node.shards_dir();
        std::fs::create_dir_all(&root).map_err(|e| StorageError::io(&root, e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(|e| StorageError::io(&root, e))? {
            let path = entry.map_err(|e| StorageError::io(&root, e))?.path();
            if path.join(META_FILE).exists() {
                found.push(read_meta(&path)?);
            }
        }
        for meta in found {
            node.open_shard(meta).await?;
        }
        for spec in node.placement.configured_shards() {
            if spec.replicas.contains(&node.config.node_id) && node.shards.get(&spec.name).is_none()
            {
                node.create_local(&spec).await?;
            }
        }
        Ok(node)
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    pub fn metrics(&self) -> &JournalMetrics {
        &self.metrics
    }

    /// The configured gRPC address of journal node `id`.
    pub fn node_addr(&self, id: NodeId) -> Option<String> {
        self.peers.addr(id).map(str::to_owned)
    }

    fn shards_dir(&self) -> PathBuf {
        self.config.data_dir.join("shards")
    }

    async fn open_shard(&self, meta: ShardMeta) -> Result<Arc<Shard>> {
        let dir = self.shards_dir().join(&meta.name);
        let shard = Shard::open(
            meta,
            dir,
            self.config.clone(),
            self.peers.clone(),
            self.metrics.clone(),
        )?;
        shard.replica().elect_if_alone().await?;
        self.shards.insert(shard.clone());
        Ok(shard)
    }

    /// Creates the local replica of `spec` (directory, `shard.toml`, empty log).
    async fn create_local(&self, spec: &ShardSpec) -> Result<Arc<Shard>> {
        let dir = self.shards_dir().join(&spec.name);
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let meta = ShardMeta {
            name: spec.name.clone(),
            replicas: spec.replicas.clone(),
        };
        let text =
            toml::to_string(&meta).map_err(|e| JournalError::InvalidArgument(e.to_string()))?;
        write_atomic(&dir.join(META_FILE), text.as_bytes())?;
        sync_dir(&self.shards_dir())?;
        tracing::info!(shard = %spec.name, replicas = ?spec.replicas, "shard replica created");
        self.open_shard(meta).await
    }

    /// The open shard `name`.
    pub fn shard(&self, name: &str) -> Result<Arc<Shard>> {
        self.shards
            .get(name)
            .ok_or_else(|| JournalError::ShardNotFound(name.to_owned()))
    }

    pub fn list(&self) -> Vec<ShardStatus> {
        self.shards.list().iter().map(|s| s.status()).collect()
    }

    /// Creates a shard on all of its replicas (chosen by the placement). Idempotent on
    /// the other replicas, so a failed attempt can be retried.
    pub async fn create_shard(&self, name: &str, factor: usize) -> Result<ShardSpec> {
        validate_shard_name(name).map_err(JournalError::InvalidArgument)?;
        let _admin = self.admin.lock().await;
        if self.shards.get(name).is_some() {
            return Err(JournalError::ShardExists(name.to_owned()));
        }
        let spec = ShardSpec {
            name: name.to_owned(),
            replicas: self.placement.assign_replicas(name, factor)?,
        };
        for &id in spec.replicas.iter().filter(|id| **id != self.node_id()) {
            self.call_peer(id, "create", |mut c, timeout| {
                let req = CreateReplicaRequest {
                    shard: spec.name.clone(),
                    replicas: spec.replicas.clone(),
                };
                async move { tokio::time::timeout(timeout, c.create_replica(req)).await }
            })
            .await?;
        }
        if spec.replicas.contains(&self.node_id()) {
            self.create_local(&spec).await?;
        }
        Ok(spec)
    }

    /// Creates the local replica on a peer's request; the same replicas again is fine.
    pub async fn create_replica(&self, name: &str, replicas: Vec<NodeId>) -> Result<()> {
        validate_shard_name(name).map_err(JournalError::InvalidArgument)?;
        if !replicas.contains(&self.node_id()) {
            return Err(JournalError::InvalidArgument(format!(
                "node {} is not a replica of {name:?}",
                self.node_id()
            )));
        }
        let _admin = self.admin.lock().await;
        match self.shards.get(name) {
            Some(s) if s.meta().replicas == replicas => Ok(()),
            Some(s) => Err(JournalError::ShardExists(format!(
                "{name} (with replicas {:?}, not {replicas:?})",
                s.meta().replicas
            ))),
            None => self
                .create_local(&ShardSpec {
                    name: name.to_owned(),
                    replicas,
                })
                .await
                .map(|_| ()),
        }
    }

    /// Deletes a shard from every replica: the others first, so a failure leaves this
    /// node able to retry.
    pub async fn delete_shard(&self, name: &str) -> Result<()> {
        let shard = self.shard(name)?;
        for &id in shard
            .meta()
            .replicas
            .iter()
            .filter(|id| **id != self.node_id())
        {
            self.call_peer(id, "delete", |mut c, timeout| {
                let req = DeleteReplicaRequest {
                    shard: name.to_owned(),
                };
                async move { tokio::time::timeout(timeout, c.delete_replica(req)).await }
            })
            .await?;
        }
        self.delete_replica(name).await
    }

    /// Deletes the local replica (files included); a missing one is fine.
    pub async fn delete_replica(&self, name: &str) -> Result<()> {
        let _admin = self.admin.lock().await;
        let Some(shard) = self.shards.remove(name) else {
            return Ok(());
        };
        shard.close().await;
        let dir = shard.dir().to_owned();
        remove_dir(&dir)?;
        sync_dir(&self.shards_dir())?;
        tracing::info!(shard = %name, "shard replica deleted");
        Ok(())
    }

    async fn call_peer<F, Fut, T>(&self, id: NodeId, what: &str, call: F) -> Result<()>
    where
        F: FnOnce(crate::replication::peers::PeerClient, Duration) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<
                std::result::Result<T, tonic::Status>,
                tokio::time::error::Elapsed,
            >,
        >,
    {
        let client = self.peers.client(id).ok_or_else(|| {
            JournalError::Unavailable(format!("no address for journal node {id}"))
        })?;
        match call(client, self.config.replication.peer_timeout()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound && what == "delete" => Ok(()),
            Ok(Err(status)) => Err(JournalError::Unavailable(format!(
                "{what} on journal node {id} failed: {}; retry the request",
                status.message()
            ))),
            Err(_) => Err(JournalError::Unavailable(format!(
                "{what} on journal node {id} timed out; retry the request"
            ))),
        }
    }

    /// Applies retention to every shard, every `retention_check_interval_secs`.
    pub async fn run_retention(self: Arc<Self>, shutdown: CancellationToken) {
        let period = Duration::from_secs(self.config.storage.retention_check_interval_secs);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for shard in self.shards.list() {
                if let Err(e) = shard.apply_retention().await {
                    tracing::warn!(shard = %shard.name(), error = %e, "retention failed");
                }
            }
        }
    }

    /// Whether every shard has a known leader (readiness detail).
    pub fn shards_without_leader(&self) -> Vec<String> {
        self.shards
            .list()
            .iter()
            .filter(|s| !s.replica().has_leader())
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// Closes every shard: replication stops, writers sync and stop.
    pub async fn close(&self) {
        for shard in self.shards.list() {
            shard.close().await;
        }
    }
}

fn read_meta(dir: &Path) -> Result<ShardMeta> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| StorageError::io(&path, e))?;
    toml::from_str(&text).map_err(|e| {
        StorageError::Corrupt {
            path,
            reason: e.to_string(),
        }
        .into()
    })
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(dir, e).into()),
    }
}
