//! Raft storage in RocksDB: the log store and the state machine, over one database with
//! a column family each for the log, Raft's own state, the data and the data's metadata.
//!
//! | column family | keys |
//! |---|---|
//! | `log` | entry index (u64 BE) → entry (JSON) |
//! | `raft` | `vote`, `committed`, `last_purged` (JSON) |
//! | `data` | the key-value state (see `kv::record`) |
//! | `meta` | `last_applied`, `membership` (JSON), written in the same batch as `data` |

// openraft's traits fix the error type (`StorageError`, 224 bytes); the helpers return it too.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod metrics;
pub mod snapshot;
pub mod state_machine;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::error::{Error, Result};

pub use log_store::LogStore;
pub use metrics::StorageMetrics;
pub use state_machine::StateMachineStore;

pub const CF_LOG: &str = "log";
pub const CF_RAFT: &str = "raft";
pub const CF_DATA: &str = "data";
pub const CF_META: &str = "meta";

/// Opens (creating if needed) the database under `dir/db`.
pub fn open_db(dir: &Path) -> Result<Arc<DB>> {
    std::fs::create_dir_all(dir)?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let mut data_opts = Options::default();
    data_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_LOG, Options::default()),
        ColumnFamilyDescriptor::new(CF_RAFT, Options::default()),
        ColumnFamilyDescriptor::new(CF_DATA, data_opts),
        ColumnFamilyDescriptor::new(CF_META, Options::default()),
    ];
    Ok(Arc::new(DB::open_cf_descriptors(
        &opts,
        dir.join("db"),
        cfs,
    )?))
}

/// A column family handle, or a corruption error if the database lacks it.
pub fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Corrupt(format!("missing column family {name}")))
}

/// Wraps any error as openraft's storage error for `subject`.
pub(crate) fn io_err<E: std::error::Error + 'static>(
    f: impl FnOnce(openraft::AnyError) -> openraft::StorageIOError<u64>,
    e: E,
) -> openraft::StorageError<u64> {
    f(openraft::AnyError::new(&e)).into()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::kv::{LeaseClock, WatchHub};
    use crate::raft::{StorageError, TypeConfig};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let db = open_db(dir.path()).expect("open db");
            let metrics = StorageMetrics::unregistered();
            let log = LogStore::new(db.clone(), metrics.clone()).expect("log store");
            let sm = StateMachineStore::new(
                db,
                dir.path().join("snapshot"),
                Arc::new(WatchHub::new(100, 0)),
                Arc::new(LeaseClock::new()),
                metrics,
            )
            .expect("state machine");
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        let _ = Cursor::new(Vec::<u8>::new());
        Suite::test_all(Builder).expect("openraft storage suite passes");
    }
}
