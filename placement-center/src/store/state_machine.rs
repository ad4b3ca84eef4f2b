//! The state machine: applies committed entries to the data column family, builds and
//! installs snapshots of it.
//!
//! Each `apply` call writes its data changes and `last_applied` (and membership) in one
//! `WriteBatch`, so a crash leaves either all of a batch or none of it. Not synced: the
//! log is durable, and after a crash openraft re-applies from `last_applied`.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use crate::kv::apply::Applier;
use crate::kv::{CommandResponse, KvReader, LeaseClock, WatchHub};
use crate::raft::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::store::metrics::StorageMetrics;
use crate::store::{cf, io_err, snapshot, CF_DATA, CF_META};

const LAST_APPLIED: &[u8] = b"last_applied";
const MEMBERSHIP: &[u8] = b"membership";

/// The RocksDB state machine. Reads bypass it through [`KvReader`] on the same database.
pub struct StateMachineStore {
    db: Arc<DB>,
    /// Where the latest snapshot (built or installed) is kept for sending to peers.
    snapshot_path: PathBuf,
    /// Events of applied writes go here, for watchers.
    hub: Arc<WatchHub>,
    /// Lease grants and revokes go here, for the leader's expiry loop.
    leases: Arc<LeaseClock>,
    metrics: StorageMetrics,
    /// Counter making snapshot ids unique on this node.
    snapshot_seq: u64,
}

impl StateMachineStore {
    /// Opens the state machine; seeds the watch hub's revision and the lease clock from it.
    pub fn new(
        db: Arc<DB>,
        snapshot_path: PathBuf,
        hub: Arc<WatchHub>,
        leases: Arc<LeaseClock>,
        metrics: StorageMetrics,
    ) -> crate::Result<Self> {
        cf(&db, CF_DATA)?;
        let reader = KvReader::new(db.clone());
        hub.reset(reader.revision()?);
        leases.reset(reader.leases()?);
        Ok(StateMachineStore {
            db,
            snapshot_path,
            hub,
            leases,
            metrics,
            snapshot_seq: 0,
        })
    }

    fn read_meta(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        read_meta(&self.db, None)
    }
}

/// `last_applied` and membership, optionally from a RocksDB snapshot.
fn read_meta(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let meta = cf(db, CF_META).map_err(|e| io_err(StorageIOError::read_state_machine, e))?;
    let get = |key: &[u8]| match snap {
        Some(s) => s.get_cf(meta, key),
        None => db.get_cf(meta, key),
    };
    let last = get(LAST_APPLIED).map_err(|e| io_err(StorageIOError::read_state_machine, e))?;
    let membership = get(MEMBERSHIP).map_err(|e| io_err(StorageIOError::read_state_machine, e))?;
    let last: Option<LogId> = match last {
        Some(b) => {
            serde_json::from_slice(&b).map_err(|e| io_err(StorageIOError::read_state_machine, e))?
        }
        None => None,
    };
    let membership: StoredMembership = match membership {
        Some(b) => {
            serde_json::from_slice(&b).map_err(|e| io_err(StorageIOError::read_state_machine, e))?
        }
        None => StoredMembership::default(),
    };
    Ok((last, membership))
}

fn put_meta(
    batch: &mut WriteBatch,
    meta: &rocksdb::ColumnFamily,
    last: &Option<LogId>,
    m: &StoredMembership,
) -> Result<(), StorageError> {
    let enc = |v: &dyn erased::Json| {
        v.json()
            .map_err(|e| io_err(StorageIOError::write_state_machine, e))
    };
    batch.put_cf(meta, LAST_APPLIED, enc(last)?);
    batch.put_cf(meta, MEMBERSHIP, enc(m)?);
    Ok(())
}

/// Lets `put_meta` encode two different types with one closure.
mod erased {
    pub trait Json {
        fn json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_meta()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let start = Instant::now();
        let werr = |e: crate::Error| io_err(StorageIOError::write_state_machine, e);
        let (mut last, mut membership) = self.read_meta()?;
        let data = cf(&self.db, CF_DATA).map_err(werr)?;
        let meta = cf(&self.db, CF_META).map_err(werr)?;
        let mut applier = Applier::new(&self.db, data).map_err(werr)?;
        let mut responses = Vec::new();
        for entry in entries {
            last = Some(entry.log_id);
            responses.push(match entry.payload {
                EntryPayload::Blank => CommandResponse::None,
                EntryPayload::Normal(cmd) => applier.apply(&cmd).map_err(werr)?,
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::None
                }
            });
        }
        let mut batch = WriteBatch::default();
        let applied = applier.finish(&mut batch);
        put_meta(&mut batch, meta, &last, &membership)?;
        let write_start = Instant::now();
        self.db
            .write_opt(batch, &WriteOptions::default())
            .map_err(|e| io_err(StorageIOError::write_state_machine, e))?;
        self.metrics.apply_write.observe_duration(write_start);
        self.leases.apply(&applied.lease_changes);
        self.hub.publish(applied.events, applied.revision);
        self.metrics.apply.observe_duration(start);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            db: self.db.clone(),
            snapshot_path: self.snapshot_path.clone(),
            metrics: self.metrics.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let start = Instant::now();
        let werr = |e: crate::Error| {
            io_err(
                |a| StorageIOError::write_snapshot(Some(meta.signature()), a),
                e,
            )
        };
        let bytes = data.into_inner();
        let pairs = snapshot::read_pairs(&bytes).map_err(werr)?;
        let data_cf = cf(&self.db, CF_DATA).map_err(werr)?;
        let meta_cf = cf(&self.db, CF_META).map_err(werr)?;
        // Replace, not merge: wipe the data column family in the same batch.
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(data_cf, [0u8].as_slice(), [0xffu8; 8].as_slice());
        for (k, v) in &pairs {
            batch.put_cf(data_cf, k, v);
        }
        put_meta(
            &mut batch,
            meta_cf,
            &meta.last_log_id,
            &meta.last_membership,
        )?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| werr(e.into()))?;
        snapshot::save(&self.snapshot_path, meta, &bytes).map_err(werr)?;
        let reader = KvReader::new(self.db.clone());
        self.hub.reset(reader.revision().map_err(werr)?);
        self.leases.reset(reader.leases().map_err(werr)?);
        self.metrics.snapshot_installs.inc();
        self.metrics.snapshot_install.observe_duration(start);
        tracing::info!(snapshot = %meta, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let loaded = snapshot::load(&self.snapshot_path)
            .map_err(|e| io_err(|a| StorageIOError::read_snapshot(None, a), e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the data column family,
/// concurrently with applies.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    snapshot_path: PathBuf,
    metrics: StorageMetrics,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let start = Instant::now();
        let rerr = |e: crate::Error| io_err(StorageIOError::read_state_machine, e);
        let snap = self.db.snapshot();
        let (last, membership) = read_meta(&self.db, Some(&snap))?;
        let data_cf = cf(&self.db, CF_DATA).map_err(rerr)?;
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let mut data = Vec::new();
        for item in self.db.iterator_cf_opt(data_cf, opts, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| io_err(StorageIOError::read_state_machine, e))?;
            snapshot::write_pair(&mut data, &k, &v);
        }
        let snapshot_id = match &last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id,
        };
        snapshot::save(&self.snapshot_path, &meta, &data).map_err(|e| {
            io_err(
                |a| StorageIOError::write_snapshot(Some(meta.signature()), a),
                e,
            )
        })?;
        self.metrics.snapshot_builds.inc();
        self.metrics.snapshot_build.observe_duration(start);
        tracing::info!(snapshot = %meta, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
