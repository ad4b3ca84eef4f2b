//! The replica's vote record, `replica.state`: the highest epoch it has seen and whom it
//! voted for in it. Written (atomically, synced) before a vote is granted or a campaign
//! starts, so a restarted node can never vote twice in one epoch — the property that
//! makes the leader of an epoch unique.

use std::path::{Path, PathBuf};

use crate::config::NodeId;
use crate::error::StorageError;
use crate::fsutil::write_atomic;

const FILE: &str = "replica.state";

/// Epoch and vote, as persisted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoteRecord {
    pub epoch: u64,
    /// 0: no vote in `epoch`.
    pub voted_for: NodeId,
}

/// The persisted vote record of one shard replica.
#[derive(Debug)]
pub struct StableState {
    path: PathBuf,
    current: VoteRecord,
}

impl StableState {
    /// Loads `replica.state` from `dir`; a missing file is epoch 0, no vote.
    pub fn load(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(FILE);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).ok_or_else(|| StorageError::Corrupt {
                path: path.clone(),
                reason: format!("unreadable vote record {text:?}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => VoteRecord::default(),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        Ok(Self { path, current })
    }

    pub fn get(&self) -> VoteRecord {
        self.current
    }

    /// Persists a new record (no-op when unchanged).
    pub fn set(&mut self, record: VoteRecord) -> Result<(), StorageError> {
        if record == self.current {
            return Ok(());
        }
        let text = format!("epoch {}\nvoted_for {}\n", record.epoch, record.voted_for);
        write_atomic(&self.path, text.as_bytes())?;
        self.current = record;
        Ok(())
    }
}

fn parse(text: &str) -> Option<VoteRecord> {
    let mut record = VoteRecord::default();
    let mut seen = 0;
    for line in text.lines() {
        let (key, value) = line.split_once(' ')?;
        let value: u64 = value.trim().parse().ok()?;
        match key {
            "epoch" => record.epoch = value,
            "voted_for" => record.voted_for = value,
            _ => return None,
        }
        seen += 1;
    }
    (seen == 2).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StableState::load(dir.path()).unwrap();
        assert_eq!(s.get(), VoteRecord::default());
        s.set(VoteRecord {
            epoch: 7,
            voted_for: 2,
        })
        .unwrap();
        let s = StableState::load(dir.path()).unwrap();
        assert_eq!(
            s.get(),
            VoteRecord {
                epoch: 7,
                voted_for: 2
            }
        );
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(StableState::load(dir.path()).is_err());
    }
}
