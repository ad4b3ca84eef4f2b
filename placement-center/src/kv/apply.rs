//! Applies commands to the data column family: etcd's model of revisions, leases and
//! transactions, deterministic so that every replica reaches the same state.
//!
//! One [`Applier`] covers one `apply` call of the state machine (one or more log entries).
//! Its writes collect in an overlay that later commands read through, and land in RocksDB
//! in the caller's single `WriteBatch`, together with `last_applied`.

use std::collections::BTreeMap;

use rocksdb::{ColumnFamily, Direction, IteratorMode, WriteBatch, DB};

use crate::error::Result;
use crate::kv::command::{
    Command, CommandError, CommandResponse, DeleteOp, KeyValue, Op, OpResponse, PutOp, RangeOp,
    TxnOp,
};
use crate::kv::record::{
    attach_key, key_of, lease_key, prefix_end, read_i64, KvRecord, KEY_TAG, NEXT_LEASE_KEY,
    REVISION_KEY,
};
use crate::kv::watch::{Event, EventKind};

/// A lease granted or revoked by applied commands (fed to the leader's lease clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Revoked { id: i64 },
}

/// What an apply call produced besides the responses.
#[derive(Debug, Default)]
pub struct Applied {
    pub events: Vec<Event>,
    pub lease_changes: Vec<LeaseChange>,
    pub revision: i64,
}

/// Reads through pending writes, records new ones.
pub struct Applier<'a> {
    db: &'a DB,
    cf: &'a ColumnFamily,
    /// Pending writes (`None`: delete), keyed by data-CF key.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    revision: i64,
    next_lease: i64,
    applied: Applied,
}

impl<'a> Applier<'a> {
    /// Starts from the revision and lease counter stored in `cf`.
    pub fn new(db: &'a DB, cf: &'a ColumnFamily) -> Result<Self> {
        let revision = db
            .get_cf(cf, REVISION_KEY)?
            .map(|b| read_i64(&b))
            .transpose()?
            .unwrap_or(0);
        let next_lease = db
            .get_cf(cf, NEXT_LEASE_KEY)?
            .map(|b| read_i64(&b))
            .transpose()?
            .unwrap_or(1);
        Ok(Applier {
            db,
            cf,
            writes: BTreeMap::new(),
            revision,
            next_lease,
            applied: Applied::default(),
        })
    }

    /// The revision after the commands applied so far.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Writes everything into `batch` and hands back events and lease changes.
    pub fn finish(mut self, batch: &mut WriteBatch) -> Applied {
        for (k, v) in std::mem::take(&mut self.writes) {
            match v {
                Some(v) => batch.put_cf(self.cf, k, v),
                None => batch.delete_cf(self.cf, k),
            }
        }
        batch.put_cf(self.cf, REVISION_KEY, self.revision.to_be_bytes());
        batch.put_cf(self.cf, NEXT_LEASE_KEY, self.next_lease.to_be_bytes());
        self.applied.revision = self.revision;
        self.applied
    }

    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> Result<CommandResponse> {
        Ok(match command {
            Command::Batch(commands) => {
                let mut out = Vec::with_capacity(commands.len());
                for c in commands {
                    out.push(self.apply(c)?);
                }
                CommandResponse::Batch(out)
            }
            Command::Put(op) => self.txn(&TxnOp {
                compare: vec![],
                success: vec![Op::Put(op.clone())],
                failure: vec![],
            })?,
            Command::Delete(op) => self.txn(&TxnOp {
                compare: vec![],
                success: vec![Op::Delete(op.clone())],
                failure: vec![],
            })?,
            Command::DeleteRange(op) => self.txn(&TxnOp {
                compare: vec![],
                success: vec![Op::DeleteRange(op.clone())],
                failure: vec![],
            })?,
            Command::Txn(txn) => self.txn(txn)?,
            Command::LeaseGrant { ttl } => {
                let id = self.next_lease;
                self.next_lease += 1;
                self.put_raw(lease_key(id), ttl.to_be_bytes().to_vec());
                self.applied
                    .lease_changes
                    .push(LeaseChange::Granted { id, ttl: *ttl });
                CommandResponse::LeaseGranted {
                    revision: self.revision,
                    id,
                    ttl: *ttl,
                }
            }
            Command::LeaseRevoke { id } => self.revoke(*id)?,
        })
    }

    fn txn(&mut self, txn: &TxnOp) -> Result<CommandResponse> {
        let mut succeeded = true;
        for c in &txn.compare {
            if !c.holds(self.get_kv(&c.key)?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        // Refuse the whole branch before changing anything if a put names a missing lease.
        for op in ops {
            if let Op::Put(p) = op {
                if p.lease != 0 && self.get(&lease_key(p.lease))?.is_none() {
                    return Ok(CommandResponse::Error(CommandError::LeaseNotFound(p.lease)));
                }
            }
        }
        let rev = self.revision + 1;
        let mut changed = false;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                Op::Put(p) => {
                    changed = true;
                    OpResponse::Put {
                        prev_kv: self.put(p, rev)?,
                    }
                }
                Op::Get(g) => OpResponse::Get {
                    kv: self.get_kv(&g.key)?,
                },
                Op::Range(r) => self.range(r)?,
                Op::Delete(d) => {
                    let prev = self.delete(&d.key, rev)?;
                    changed |= prev.is_some();
                    delete_response(prev.into_iter().collect(), d.prev_kv)
                }
                Op::DeleteRange(d) => {
                    let mut prevs = Vec::new();
                    for (k, _) in self.scan(&key_of(&d.prefix))? {
                        if let Some(prev) = self.delete(&k[1..], rev)? {
                            prevs.push(prev);
                        }
                    }
                    changed |= !prevs.is_empty();
                    delete_response(prevs, d.prev_kv)
                }
            });
        }
        if changed {
            self.revision = rev;
        }
        Ok(CommandResponse::Ops {
            revision: self.revision,
            succeeded,
            responses,
        })
    }

    fn put(&mut self, op: &PutOp, rev: i64) -> Result<Option<KeyValue>> {
        let prev = self.get_kv(&op.key)?;
        let record = KvRecord {
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease: op.lease,
            value: op.value.clone(),
        };
        if let Some(p) = &prev {
            if p.lease != 0 && p.lease != op.lease {
                self.delete_raw(attach_key(p.lease, &op.key));
            }
        }
        if op.lease != 0 {
            self.put_raw(attach_key(op.lease, &op.key), Vec::new());
        }
        self.put_raw(key_of(&op.key), record.encode());
        self.applied.events.push(Event {
            kind: EventKind::Put,
            kv: record.into_kv(&op.key),
        });
        Ok(if op.prev_kv { prev } else { None })
    }

    /// Deletes a user key if present, returning its last state.
    fn delete(&mut self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let Some(prev) = self.get_kv(key)? else {
            return Ok(None);
        };
        if prev.lease != 0 {
            self.delete_raw(attach_key(prev.lease, key));
        }
        self.delete_raw(key_of(key));
        self.applied.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: rev,
                ..Default::default()
            },
        });
        Ok(Some(prev))
    }

    fn revoke(&mut self, id: i64) -> Result<CommandResponse> {
        if self.get(&lease_key(id))?.is_none() {
            return Ok(CommandResponse::Error(CommandError::LeaseNotFound(id)));
        }
        let prefix = attach_key(id, &[]);
        let rev = self.revision + 1;
        let mut changed = false;
        for (k, _) in self.scan(&prefix)? {
            let user_key = &k[prefix.len()..];
            changed |= self.delete(user_key, rev)?.is_some();
            self.delete_raw(k.clone());
        }
        self.delete_raw(lease_key(id));
        if changed {
            self.revision = rev;
        }
        self.applied.lease_changes.push(LeaseChange::Revoked { id });
        Ok(CommandResponse::LeaseRevoked {
            revision: self.revision,
        })
    }

    fn range(&self, r: &RangeOp) -> Result<OpResponse> {
        let all = self.scan(&key_of(&r.prefix))?;
        let count = all.len() as i64;
        let limit = if r.limit > 0 {
            r.limit as usize
        } else {
            usize::MAX
        };
        let mut kvs = Vec::new();
        for (k, v) in all.into_iter().take(limit) {
            let mut kv = KvRecord::decode(&v)?.into_kv(&k[1..]);
            if r.keys_only {
                kv.value.clear();
            }
            kvs.push(kv);
        }
        Ok(OpResponse::Range {
            more: (kvs.len() as i64) < count,
            kvs,
            count,
        })
    }

    fn get_kv(&self, user_key: &[u8]) -> Result<Option<KeyValue>> {
        self.get(&key_of(user_key))?
            .map(|b| KvRecord::decode(&b).map(|r| r.into_kv(user_key)))
            .transpose()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        Ok(self.db.get_cf(self.cf, key)?)
    }

    /// Every (key, value) under `prefix`, in key order, pending writes included.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        debug_assert!(!prefix.is_empty() && (prefix[0] == KEY_TAG || prefix[0] == b'a'));
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            found.insert(k.to_vec(), v.to_vec());
        }
        let pending = match prefix_end(prefix) {
            Some(end) => self.writes.range(prefix.to_vec()..end),
            None => self.writes.range(prefix.to_vec()..),
        };
        for (k, v) in pending {
            match v {
                Some(v) => found.insert(k.clone(), v.clone()),
                None => found.remove(k),
            };
        }
        Ok(found.into_iter().collect())
    }

    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete_raw(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

fn delete_response(prevs: Vec<KeyValue>, want_prev: bool) -> OpResponse {
    OpResponse::Delete {
        deleted: prevs.len() as i64,
        prev_kvs: if want_prev { prevs } else { Vec::new() },
    }
}

/// Single-op helpers for building commands in tests and services.
impl DeleteOp {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        DeleteOp {
            key: key.into(),
            prev_kv: false,
        }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
