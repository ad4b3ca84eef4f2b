//! The leader epoch cache of one shard replica: which epoch wrote which offsets.
//!
//! An entry `(epoch, start)` says "records from `start` on were written by the leader of
//! `epoch`", until the next entry. A new leader adds `(its epoch, its log end)` before it
//! accepts appends, and a follower adds it once it has fetched up to `start`; that entry
//! is the empty "epoch start" record that lets a leader count an acknowledgement only
//! from a follower that has truncated to its log (Raft's rule of committing only entries
//! of the current term, without spending an offset on a no-op).
//!
//! Followers compare epochs with the leader to find where their logs diverge
//! ([`EpochCache::end_offset_for`], Kafka's OffsetsForLeaderEpoch) and truncate there,
//! which is how an unacknowledged record written by a dead leader disappears.
//!
//! The cache lives in `leader-epoch.checkpoint`, rewritten atomically (temp file, fsync,
//! rename, directory fsync) on every change; changes happen only at leader changes and
//! truncations.

use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// File name of the checkpoint in a shard directory.
pub const CHECKPOINT: &str = "leader-epoch.checkpoint";

/// One epoch boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: u64,
    pub start_offset: u64,
}

/// The epoch boundaries of a replica's log, oldest first.
#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Loads the checkpoint in `dir`; `Ok(None)` when it is missing or unreadable (the
    /// caller rebuilds it from the batches' epochs).
    pub fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(CHECKPOINT);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        let mut entries: Vec<EpochEntry> = Vec::new();
        let mut lines = text.lines();
        if lines.next() != Some("v1") {
            return Ok(None);
        }
        for line in lines {
            let mut parts = line.split_whitespace();
            let (Some(e), Some(s), None) = (parts.next(), parts.next(), parts.next()) else {
                return Ok(None);
            };
            let (Ok(epoch), Ok(start_offset)) = (e.parse(), s.parse()) else {
                return Ok(None);
            };
            if entries
                .last()
                .is_some_and(|l| l.epoch >= epoch || l.start_offset > start_offset)
            {
                return Ok(None);
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Some(Self { path, entries }))
    }

    /// A cache with the given entries (rebuilt from the log), persisted at once.
    pub fn create(dir: &Path, entries: Vec<EpochEntry>) -> Result<Self, StorageError> {
        let cache = Self {
            path: dir.join(CHECKPOINT),
            entries,
        };
        cache.persist()?;
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, 0 when none.
    pub fn last_epoch(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    /// Start offset of the latest epoch.
    pub fn last_start(&self) -> Option<u64> {
        self.entries.last().map(|e| e.start_offset)
    }

    /// Records that `epoch` starts at `start_offset`; a no-op for an epoch already
    /// recorded or older than the last one.
    pub fn assign(&mut self, epoch: u64, start_offset: u64) -> Result<bool, StorageError> {
        if epoch <= self.last_epoch() {
            return Ok(false);
        }
        if let Some(last) = self.entries.last() {
            debug_assert!(last.start_offset <= start_offset);
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// Forgets epochs that start at or after `end_offset` (the log was cut there).
    pub fn truncate_from(&mut self, end_offset: u64) -> Result<(), StorageError> {
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.start_offset < end_offset)
            .count();
        if keep != self.entries.len() {
            self.entries.truncate(keep);
            self.persist()?;
        }
        Ok(())
    }

    /// Drops every entry (the log was reset to a new start offset).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.entries.clear();
        self.persist()
    }

    /// For a follower whose last epoch is `epoch`: the largest epoch `<= epoch` known
    /// here, and where it ends in this log (the next epoch's start, or `log_end`). An
    /// epoch older than every entry maps to `(0, first start)`.
    pub fn end_offset_for(&self, epoch: u64, log_end: u64) -> (u64, u64) {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        if i == 0 {
            return (0, self.entries.first().map_or(log_end, |e| e.start_offset));
        }
        let found = self.entries[i - 1].epoch;
        let end = self.entries.get(i).map_or(log_end, |e| e.start_offset);
        (found, end)
    }

    fn persist(&self) -> Result<(), StorageError> {
        let mut text = String::from("v1\n");
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        crate::fsutil::write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_truncate_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(EpochCache::load(dir.path()).unwrap().is_none());
        let mut cache = EpochCache::create(dir.path(), vec![]).unwrap();
        assert!(cache.assign(1, 0).unwrap());
        assert!(!cache.assign(1, 5).unwrap());
        assert!(cache.assign(3, 10).unwrap());
        assert!(cache.assign(4, 20).unwrap());
        let loaded = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), cache.entries());
        cache.truncate_from(20).unwrap();
        assert_eq!(cache.last_epoch(), 3);
        let loaded = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.last_epoch(), 3);
        std::fs::write(dir.path().join(CHECKPOINT), "v1\n3 10\n1 0\n").unwrap();
        assert!(
            EpochCache::load(dir.path()).unwrap().is_none(),
            "out of order"
        );
    }

    #[test]
    fn end_offsets_for_divergence() {
        let dir = tempfile::tempdir().unwrap();
        let mut leader = EpochCache::create(dir.path(), vec![]).unwrap();
        leader.assign(1, 0).unwrap();
        leader.assign(2, 100).unwrap();
        leader.assign(4, 120).unwrap();
        assert_eq!(leader.end_offset_for(0, 150), (0, 0));
        assert_eq!(leader.end_offset_for(1, 150), (1, 100));
        assert_eq!(
            leader.end_offset_for(3, 150),
            (2, 120),
            "unknown epoch: the one before"
        );
        assert_eq!(leader.end_offset_for(4, 150), (4, 150));
        assert_eq!(leader.end_offset_for(9, 150), (4, 150));
    }
}
