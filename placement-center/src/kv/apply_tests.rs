//! Unit tests of the applier: revisions, transactions and leases against a real RocksDB.
use super::*;
use crate::kv::command::{Compare, CompareResult, CompareTarget, DeleteRangeOp, GetOp};
use crate::store::{open_db, CF_DATA};

/// Applies commands one apply call each, like the state machine does.
struct Fixture {
    _dir: tempfile::TempDir,
    db: std::sync::Arc<DB>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path()).unwrap();
        Fixture { _dir: dir, db }
    }

    fn apply(&self, commands: &[Command]) -> (Vec<CommandResponse>, Applied) {
        let cf = self.db.cf_handle(CF_DATA).unwrap();
        let mut applier = Applier::new(&self.db, cf).unwrap();
        let out = commands.iter().map(|c| applier.apply(c).unwrap()).collect();
        let mut batch = WriteBatch::default();
        let applied = applier.finish(&mut batch);
        self.db.write(batch).unwrap();
        (out, applied)
    }

    fn get(&self, key: &str) -> Option<KeyValue> {
        crate::kv::KvReader::new(self.db.clone())
            .get(key.as_bytes())
            .unwrap()
            .0
    }
}

fn put(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutOp {
        key: key.into(),
        value: value.into(),
        lease,
        prev_kv: true,
    })
}

#[test]
fn revisions_and_versions() {
    let f = Fixture::new();
    let (_, a) = f.apply(&[put("a", "1", 0), put("b", "1", 0)]);
    assert_eq!(a.revision, 2);
    // Within one apply call (a batch), later commands see earlier ones.
    let (r, a) = f.apply(&[put("a", "2", 0), put("a", "3", 0)]);
    assert_eq!(a.revision, 4);
    let CommandResponse::Ops { responses, .. } = &r[1] else {
        panic!()
    };
    assert_eq!(
        responses[0],
        OpResponse::Put {
            prev_kv: f.get("a").map(|kv| KeyValue {
                value: b"2".to_vec(),
                mod_revision: 3,
                version: 2,
                ..kv
            })
        }
    );
    let kv = f.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (1, 4, 3));
    // Deleting a missing key changes nothing, not even the revision.
    let (_, a) = f.apply(&[Command::Delete(DeleteOp::new("nope"))]);
    assert_eq!(a.revision, 4);
    assert!(a.events.is_empty());
    let (_, a) = f.apply(&[Command::DeleteRange(DeleteRangeOp {
        prefix: b"".to_vec(),
        prev_kv: false,
    })]);
    assert_eq!(a.revision, 5, "one revision for the whole range");
    assert_eq!(a.events.len(), 2);
    assert!(a
        .events
        .iter()
        .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 5));
}

#[test]
fn txn_branches_atomically_at_one_revision() {
    let f = Fixture::new();
    f.apply(&[put("k", "v", 0)]);
    let txn = |expect: &str| {
        Command::Txn(TxnOp {
            compare: vec![Compare {
                key: b"k".to_vec(),
                result: CompareResult::Equal,
                target: CompareTarget::Value(expect.into()),
            }],
            success: vec![
                Op::Put(PutOp {
                    key: b"k".to_vec(),
                    value: b"w".to_vec(),
                    lease: 0,
                    prev_kv: false,
                }),
                Op::Put(PutOp {
                    key: b"k2".to_vec(),
                    value: b"w".to_vec(),
                    lease: 0,
                    prev_kv: false,
                }),
                Op::Get(GetOp { key: b"k".to_vec() }),
            ],
            failure: vec![Op::Get(GetOp { key: b"k".to_vec() })],
        })
    };
    let (r, a) = f.apply(&[txn("v")]);
    let CommandResponse::Ops {
        revision,
        succeeded,
        responses,
    } = &r[0]
    else {
        panic!()
    };
    assert!(succeeded);
    assert_eq!(*revision, 2);
    assert_eq!(a.events.len(), 2);
    assert!(a.events.iter().all(|e| e.kv.mod_revision == 2));
    let OpResponse::Get { kv: Some(kv) } = &responses[2] else {
        panic!()
    };
    assert_eq!(kv.value, b"w", "reads inside a txn see its writes");
    let (r, a) = f.apply(&[txn("v")]);
    let CommandResponse::Ops {
        revision,
        succeeded,
        ..
    } = &r[0]
    else {
        panic!()
    };
    assert!(!succeeded);
    assert_eq!(*revision, 2);
    assert!(a.events.is_empty());
}

#[test]
fn lease_revoke_deletes_attached_keys_and_unknown_leases_are_refused() {
    let f = Fixture::new();
    let (r, _) = f.apply(&[Command::LeaseGrant { ttl: 10 }]);
    let CommandResponse::LeaseGranted { id, .. } = r[0] else {
        panic!()
    };
    let (r, _) = f.apply(&[
        put("x", "1", id),
        put("y", "1", id),
        put("z", "1", 0),
        put("w", "1", id + 1),
    ]);
    assert_eq!(
        r[3],
        CommandResponse::Error(CommandError::LeaseNotFound(id + 1))
    );
    assert!(f.get("w").is_none());
    // Re-putting y without the lease detaches it.
    f.apply(&[put("y", "2", 0)]);
    let (r, a) = f.apply(&[Command::LeaseRevoke { id }]);
    assert!(matches!(r[0], CommandResponse::LeaseRevoked { .. }));
    assert_eq!(a.lease_changes, vec![LeaseChange::Revoked { id }]);
    assert!(f.get("x").is_none());
    assert!(f.get("y").is_some() && f.get("z").is_some());
    let (r, _) = f.apply(&[Command::LeaseRevoke { id }]);
    assert_eq!(
        r[0],
        CommandResponse::Error(CommandError::LeaseNotFound(id))
    );
}
