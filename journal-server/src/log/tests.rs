//! Tests of the shard log: append, read, roll, retention, recovery, truncation.

use bytes::Bytes;

use super::*;

fn config(segment_bytes: u64) -> StorageConfig {
    StorageConfig {
        segment_bytes,
        index_interval_bytes: 128,
        ..StorageConfig::default()
    }
}

fn records(n: usize, tag: &str, ts: i64) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            payload: Bytes::from(format!("{tag}-{i}-{}", "x".repeat(40))),
            timestamp_ms: ts,
            ..Default::default()
        })
        .collect()
}

fn append(log: &Log, epoch: u64, n: usize, ts: i64) -> (u64, u64) {
    let recs = records(n, "r", ts);
    let out = log.append_batches(epoch, &[&recs], ts).unwrap();
    log.sync().unwrap();
    out[0]
}

#[test]
fn append_read_roll_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(dir.path(), &config(1024)).unwrap();
    assert_eq!(report, RecoveryReport::default());
    log.assign_epoch(1, 0).unwrap();
    for i in 0..40 {
        assert_eq!(
            append(&log, 1, 3, 1_000 + i),
            (i as u64 * 3, i as u64 * 3 + 3)
        );
    }
    assert!(
        log.segment_count() > 5,
        "rolled by size: {}",
        log.segment_count()
    );
    assert_eq!(log.end_offset(), 120);
    let all = log.read(0, 1000, usize::MAX, 120).unwrap();
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..120).collect::<Vec<_>>()
    );
    let some = log.read(50, 7, usize::MAX, 120).unwrap();
    assert_eq!(some.first().unwrap().offset, 50);
    assert_eq!(some.len(), 7);
    assert_eq!(
        log.read(110, 100, usize::MAX, 115).unwrap().len(),
        5,
        "limit respected"
    );
    assert_eq!(
        log.read(0, 100, 1, 120).unwrap().len(),
        1,
        "at least one record"
    );
    assert!(log.read(120, 10, usize::MAX, 120).unwrap().is_empty());
    drop(log);

    let (log, report) = Log::open(dir.path(), &config(1024)).unwrap();
    assert!(report.reason.is_none());
    assert_eq!(log.end_offset(), 120);
    assert_eq!(log.last_epoch(), 1);
    let again = log.read(0, 1000, usize::MAX, 120).unwrap();
    assert_eq!(again, all);
}

#[test]
fn group_of_requests_gets_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), &config(300)).unwrap();
    let a = records(2, "a", 5);
    let b = records(3, "b", 5);
    let c = records(1, "c", 5);
    let out = log.append_batches(1, &[&a, &b, &c], 5).unwrap();
    assert_eq!(out, vec![(0, 2), (2, 5), (5, 6)]);
    log.sync().unwrap();
    let read = log.read(0, 100, usize::MAX, 6).unwrap();
    assert!(read[2].payload.starts_with(b"b-0"));
    assert!(read[5].payload.starts_with(b"c-0"));
    assert!(log.segment_count() >= 2, "rolled inside one group");
}

#[test]
fn roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        segment_max_age_secs: 10,
        ..config(1 << 20)
    };
    let (log, _) = Log::open(dir.path(), &cfg).unwrap();
    let now = crate::clock::now_ms();
    append(&log, 1, 1, now);
    append(&log, 1, 1, now + 1_000);
    assert_eq!(log.segment_count(), 1);
    append(&log, 1, 1, now + 11_000);
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn retention_by_size_and_age_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        retention_bytes: 2048,
        retention_secs: 100,
        ..config(1024)
    };
    let (log, _) = Log::open(dir.path(), &cfg).unwrap();
    let now = 1_000_000_000;
    for i in 0..60 {
        append(&log, 1, 2, now + i);
    }
    let before = log.segment_count();
    let limit = log.end_offset();
    // Nothing is deleted beyond the limit (uncommitted data).
    assert_eq!(
        log.apply_retention(now, 0).unwrap(),
        RetentionReport::default()
    );
    let report = log.apply_retention(now, limit).unwrap();
    assert!(report.segments > 0);
    assert_eq!(log.segment_count(), before - report.segments);
    assert!(log.size_bytes() >= 2048, "keeps at least retention_bytes");
    let start = log.start_offset();
    assert!(start > 0);
    assert_eq!(
        log.read(start, 1, usize::MAX, limit).unwrap()[0].offset,
        start
    );
    // Age: everything is older than 100 s at now + 200 s, except the active segment.
    let report = log.apply_retention(now + 200_000, limit).unwrap();
    assert!(report.segments > 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.end_offset(), limit);
    // The deleted files are gone; a reopen agrees.
    drop(log);
    let (log, _) = Log::open(dir.path(), &cfg).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.end_offset(), limit);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), &config(1 << 20)).unwrap();
    for _ in 0..10 {
        append(&log, 1, 2, 5);
    }
    let size = log.size_bytes();
    drop(log);
    let path = dir.path().join(segment::file_name(0, "log"));
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(&[0x11; 25]); // a torn header
    std::fs::write(&path, &data).unwrap();
    let (log, report) = Log::open(dir.path(), &config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 25);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.end_offset(), 20);
    assert_eq!(
        append(&log, 1, 1, 5),
        (20, 21),
        "appends continue after the cut"
    );
}

#[test]
fn truncate_reset_and_raw_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, _) = Log::open(&dir.path().join("l"), &config(600)).unwrap();
    leader.assign_epoch(1, 0).unwrap();
    for _ in 0..10 {
        append(&leader, 1, 2, 5);
    }
    leader.assign_epoch(2, 20).unwrap();
    for _ in 0..5 {
        append(&leader, 2, 2, 5);
    }
    // A follower copies raw batches in several fetches.
    let (follower, _) = Log::open(&dir.path().join("f"), &config(600)).unwrap();
    while follower.end_offset() < leader.end_offset() {
        let raw = leader
            .read_raw(follower.end_offset(), 500, leader.end_offset())
            .unwrap();
        let headers = follower.append_raw(&raw, 5).unwrap();
        for h in headers {
            follower.assign_epoch(h.epoch, h.base_offset).unwrap();
        }
    }
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.read(0, 100, usize::MAX, 30).unwrap(),
        leader.read(0, 100, usize::MAX, 30).unwrap()
    );
    assert!(leader.read_raw(1, 100, 30).is_err(), "not a batch start");
    // Truncate into an older segment: later segments and epochs go.
    follower.truncate_to(10).unwrap();
    assert_eq!(follower.end_offset(), 10);
    assert_eq!(follower.last_epoch(), 1);
    assert!(
        follower
            .append_raw(&leader.read_raw(12, 100, 30).unwrap(), 5)
            .is_err(),
        "gap"
    );
    follower.reset(24).unwrap();
    assert_eq!((follower.start_offset(), follower.end_offset()), (24, 24));
    assert_eq!(follower.last_epoch(), 0);
    follower
        .append_raw(&leader.read_raw(24, 10_000, 30).unwrap(), 5)
        .unwrap();
    assert_eq!(follower.end_offset(), 30);
    drop(follower);
    let (follower, _) = Log::open(&dir.path().join("f"), &config(600)).unwrap();
    assert_eq!((follower.start_offset(), follower.end_offset()), (24, 30));
}

#[test]
fn lookup_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), &config(512)).unwrap();
    for i in 0..50 {
        append(&log, 1, 1, 1_000 + i * 10);
    }
    assert_eq!(log.offset_for_timestamp(0, 50).unwrap(), 0);
    assert_eq!(log.offset_for_timestamp(1_000, 50).unwrap(), 0);
    assert_eq!(log.offset_for_timestamp(1_001, 50).unwrap(), 1);
    assert_eq!(log.offset_for_timestamp(1_250, 50).unwrap(), 25);
    assert_eq!(log.offset_for_timestamp(1_490, 50).unwrap(), 49);
    assert_eq!(log.offset_for_timestamp(9_999, 50).unwrap(), 50);
    assert_eq!(
        log.offset_for_timestamp(1_250, 20).unwrap(),
        20,
        "limit caps it"
    );
}

#[test]
fn lost_epoch_checkpoint_is_rebuilt_from_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), &config(1 << 20)).unwrap();
    append(&log, 3, 2, 5);
    append(&log, 5, 2, 5);
    drop(log);
    std::fs::remove_file(dir.path().join(crate::epochs::CHECKPOINT)).unwrap();
    let (log, _) = Log::open(dir.path(), &config(1 << 20)).unwrap();
    assert_eq!(
        log.epoch_entries(),
        vec![
            EpochEntry {
                epoch: 3,
                start_offset: 0
            },
            EpochEntry {
                epoch: 5,
                start_offset: 2
            }
        ]
    );
}
