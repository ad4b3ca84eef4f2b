//! Local reads of the data column family, from one RocksDB snapshot so that the keys and
//! the revision in a response belong together.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

use crate::error::{Error, Result};
use crate::kv::command::{KeyValue, RangeOp};
use crate::kv::record::{attach_key, key_of, lease_key, read_i64, KvRecord, REVISION_KEY};
use crate::store::CF_DATA;

/// Reads the state machine's data directly (openraft owns the writer).
#[derive(Clone)]
pub struct KvReader {
    db: Arc<DB>,
}

/// A range result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
    pub revision: i64,
}

impl KvReader {
    pub fn new(db: Arc<DB>) -> Self {
        KvReader { db }
    }

    /// One key and the revision it was read at.
    pub fn get(&self, key: &[u8]) -> Result<(Option<KeyValue>, i64)> {
        let cf = self.cf()?;
        let snap = self.db.snapshot();
        let kv = snap
            .get_cf(cf, key_of(key))?
            .map(|b| KvRecord::decode(&b).map(|r| r.into_kv(key)))
            .transpose()?;
        Ok((kv, revision_of(snap.get_cf(cf, REVISION_KEY)?)?))
    }

    /// Keys under a prefix, in key order.
    pub fn range(&self, op: &RangeOp) -> Result<RangeResult> {
        let cf = self.cf()?;
        let snap = self.db.snapshot();
        let revision = revision_of(snap.get_cf(cf, REVISION_KEY)?)?;
        let start = key_of(&op.prefix);
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let limit = if op.limit > 0 {
            op.limit as usize
        } else {
            usize::MAX
        };
        let (mut kvs, mut count) = (Vec::new(), 0i64);
        for item in
            self.db
                .iterator_cf_opt(cf, opts, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(&start) {
                break;
            }
            count += 1;
            if kvs.len() < limit {
                let mut kv = KvRecord::decode(&v)?.into_kv(&k[1..]);
                if op.keys_only {
                    kv.value.clear();
                }
                kvs.push(kv);
            }
        }
        Ok(RangeResult {
            more: (kvs.len() as i64) < count,
            kvs,
            count,
            revision,
        })
    }

    /// The store revision.
    pub fn revision(&self) -> Result<i64> {
        revision_of(self.db.get_cf(self.cf()?, REVISION_KEY)?)
    }

    /// The TTL a lease was granted with and its keys; `None` if it does not exist.
    pub fn lease(&self, id: i64) -> Result<Option<(i64, Vec<Vec<u8>>)>> {
        let cf = self.cf()?;
        let Some(ttl) = self.db.get_cf(cf, lease_key(id))? else {
            return Ok(None);
        };
        let prefix = attach_key(id, &[]);
        let mut keys = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            keys.push(k[prefix.len()..].to_vec());
        }
        Ok(Some((read_i64(&ttl)?, keys)))
    }

    /// Every lease and its TTL (to seed the lease clock).
    pub fn leases(&self) -> Result<Vec<(i64, i64)>> {
        let cf = self.cf()?;
        let prefix = [crate::kv::record::LEASE_TAG];
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((read_i64(&k[1..])?, read_i64(&v)?));
        }
        Ok(out)
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_DATA)
            .ok_or_else(|| Error::Corrupt("missing data column family".into()))
    }
}

fn revision_of(bytes: Option<Vec<u8>>) -> Result<i64> {
    bytes
        .map(|b| read_i64(&b))
        .transpose()
        .map(|r| r.unwrap_or(0))
}
