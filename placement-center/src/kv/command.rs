//! The commands that go through Raft and their results: the replicated vocabulary of the
//! state machine. Serialized with serde into the Raft log, so changing them changes the
//! on-disk format.

use serde::{Deserialize, Serialize};

/// A key with its value and etcd-style revisions (the domain twin of `pb::KeyValue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// Sets a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOp {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// 0: no lease.
    pub lease: i64,
    pub prev_kv: bool,
}

/// Reads one key (inside a transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOp {
    pub key: Vec<u8>,
}

/// Reads a prefix (inside a transaction, or locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeOp {
    pub prefix: Vec<u8>,
    /// 0: no limit.
    pub limit: i64,
    pub keys_only: bool,
}

/// Deletes one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOp {
    pub key: Vec<u8>,
    pub prev_kv: bool,
}

/// Deletes a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeOp {
    pub prefix: Vec<u8>,
    pub prev_kv: bool,
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put(PutOp),
    Get(GetOp),
    Range(RangeOp),
    Delete(DeleteOp),
    DeleteRange(DeleteRangeOp),
}

/// How a compare relates the key's field to the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// The field compared and the operand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Value(Vec<u8>),
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

impl Compare {
    /// Evaluates against the key's current state (`None`: missing key, whose value is empty
    /// and whose version and revisions are 0, as in etcd).
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering;
        let ord: Ordering = match &self.target {
            CompareTarget::Value(v) => kv.map_or(&[][..], |kv| &kv.value[..]).cmp(&v[..]),
            CompareTarget::Version(n) => kv.map_or(0, |kv| kv.version).cmp(n),
            CompareTarget::CreateRevision(n) => kv.map_or(0, |kv| kv.create_revision).cmp(n),
            CompareTarget::ModRevision(n) => kv.map_or(0, |kv| kv.mod_revision).cmp(n),
        };
        match self.result {
            CompareResult::Equal => ord == Ordering::Equal,
            CompareResult::NotEqual => ord != Ordering::Equal,
            CompareResult::Greater => ord == Ordering::Greater,
            CompareResult::Less => ord == Ordering::Less,
        }
    }
}

/// A transaction: if every compare holds, `success` runs, else `failure`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOp {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// A write proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutOp),
    Delete(DeleteOp),
    DeleteRange(DeleteRangeOp),
    Txn(TxnOp),
    LeaseGrant {
        ttl: i64,
    },
    /// Revokes a lease and deletes its keys. The leader proposes it too when a lease
    /// expires by its clock, so every replica deletes the same keys at the same revision.
    LeaseRevoke {
        id: i64,
    },
    /// Several clients' commands in one log entry, so they share one fsync and one
    /// replication round; applied in order, each with its own result.
    Batch(Vec<Command>),
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResponse {
    Put {
        prev_kv: Option<KeyValue>,
    },
    Get {
        kv: Option<KeyValue>,
    },
    Range {
        kvs: Vec<KeyValue>,
        more: bool,
        count: i64,
    },
    Delete {
        deleted: i64,
        prev_kvs: Vec<KeyValue>,
    },
}

/// A deterministic refusal decided by the state machine (the same on every replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandError {
    LeaseNotFound(i64),
}

/// The result of applying a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Result of Put, Delete, DeleteRange (one op) or Txn; `revision` is the store's
    /// revision after the command.
    Ops {
        revision: i64,
        succeeded: bool,
        responses: Vec<OpResponse>,
    },
    LeaseGranted {
        revision: i64,
        id: i64,
        ttl: i64,
    },
    LeaseRevoked {
        revision: i64,
    },
    Batch(Vec<CommandResponse>),
    Error(CommandError),
    /// Result of entries that carry no command (blank, membership).
    None,
}

impl From<CommandError> for crate::Error {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::LeaseNotFound(id) => crate::Error::NotFound(format!("lease {id}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(value: &[u8], version: i64) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            value: value.to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version,
            lease: 0,
        }
    }

    #[test]
    fn compare_semantics_match_etcd() {
        let c = |result, target| Compare {
            key: b"k".to_vec(),
            result,
            target,
        };
        let present = kv(b"b", 3);
        assert!(c(CompareResult::Equal, CompareTarget::Value(b"b".to_vec())).holds(Some(&present)));
        assert!(
            c(CompareResult::Greater, CompareTarget::Value(b"a".to_vec())).holds(Some(&present))
        );
        assert!(c(CompareResult::Less, CompareTarget::Version(4)).holds(Some(&present)));
        assert!(c(CompareResult::NotEqual, CompareTarget::ModRevision(4)).holds(Some(&present)));
        // A missing key has version 0 and create_revision 0: "create if absent".
        assert!(c(CompareResult::Equal, CompareTarget::Version(0)).holds(None));
        assert!(c(CompareResult::Equal, CompareTarget::CreateRevision(0)).holds(None));
        assert!(!c(CompareResult::Equal, CompareTarget::CreateRevision(0)).holds(Some(&present)));
    }
}
