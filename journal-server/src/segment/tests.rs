//! Tests of one segment: append, lookups, sealing, recovery of torn and corrupt tails.

use super::batch::encode;
use super::*;
use crate::record::NewRecord;

fn batch(base: u64, n: usize, ts: i64) -> (Vec<u8>, BatchHeader) {
    let records: Vec<_> = (0..n)
        .map(|i| NewRecord {
            payload: Bytes::from(format!("record-{}", base + i as u64)),
            timestamp_ms: ts,
            ..Default::default()
        })
        .collect();
    let mut out = Vec::new();
    let h = encode(&mut out, base, 1, &records, ts);
    (out, h)
}

fn filled(dir: &Path, batches: u64) -> Segment {
    let seg = Segment::create(dir, 0, 0).unwrap();
    for b in 0..batches {
        let (bytes, h) = batch(b * 2, 2, 1_000 + b as i64);
        seg.append(&bytes, &[h], 256).unwrap();
    }
    seg
}

#[test]
fn names_round_trip() {
    assert_eq!(file_name(42, "log"), "00000000000000000042.log");
    assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
    assert_eq!(parse_log_name("42.log"), None);
    assert_eq!(parse_log_name("00000000000000000042.index"), None);
}

#[test]
fn append_find_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let seg = filled(dir.path(), 50);
    assert_eq!(seg.next_offset(), 100);
    let (idx, tidx) = seg.index_lens();
    assert!(idx > 1 && idx < 50, "sparse: {idx}");
    assert!(tidx > 1, "{tidx}");
    for offset in [0, 1, 37, 99] {
        let (pos, h) = seg.find_batch(offset).unwrap().unwrap();
        assert!(h.base_offset <= offset && offset < h.next_offset());
        let bytes = seg.read_batch(pos, &h).unwrap();
        let records = batch::decode_records(&h, &bytes).unwrap();
        assert!(records.iter().any(|r| r.offset == offset));
    }
    assert!(seg.find_batch(100).unwrap().is_none());
    let (_, first) = seg.time_scan_start(1_030);
    assert!(first <= 60, "{first}");
}

#[test]
fn recovery_truncates_torn_tail_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let seg = filled(dir.path(), 10);
    let good_size = seg.size();
    drop(seg);
    // A torn write: half a batch after the last good one.
    let (bytes, _) = batch(20, 3, 5);
    let path = dir.path().join(file_name(0, "log"));
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(&bytes[..bytes.len() / 2]);
    std::fs::write(&path, &data).unwrap();

    let (seg, report) = Segment::recover(dir.path(), 0, 64).unwrap();
    assert_eq!(report.batches, 10);
    assert_eq!(report.truncated_bytes, (bytes.len() / 2) as u64);
    assert!(report.reason.is_some());
    assert_eq!(seg.size(), good_size);
    assert_eq!(seg.next_offset(), 20);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_size);
}

#[test]
fn recovery_cuts_at_a_corrupt_batch() {
    let dir = tempfile::tempdir().unwrap();
    let seg = filled(dir.path(), 10);
    let (pos, _) = seg.find_batch(14).unwrap().unwrap();
    drop(seg);
    let path = dir.path().join(file_name(0, "log"));
    let mut data = std::fs::read(&path).unwrap();
    data[pos as usize + HEADER_LEN + 3] ^= 0xff; // payload bit rot in batch 7
    std::fs::write(&path, &data).unwrap();
    let (seg, report) = Segment::recover(dir.path(), 0, 64).unwrap();
    assert_eq!(report.batches, 7);
    assert!(report.reason.unwrap().contains("CRC"));
    assert_eq!(seg.next_offset(), 14);
    assert_eq!(seg.size(), pos);
    // A recovered segment can be truncated again (its scan starts from byte 0).
    seg.truncate_to(10, 64).unwrap();
    assert_eq!(seg.next_offset(), 10);
}

#[test]
fn sealed_segment_loads_from_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let seg = filled(dir.path(), 30);
    let max_ts = seg.max_timestamp();
    seg.seal().unwrap();
    let lens = seg.index_lens();
    drop(seg);
    let seg = Segment::open_sealed(dir.path(), 0, 60, 256).unwrap();
    assert_eq!(seg.index_lens().0, lens.0);
    assert_eq!(seg.max_timestamp(), max_ts);
    assert_eq!(seg.next_offset(), 60);
    // A lost index is rebuilt by a scan.
    std::fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
    let seg = Segment::open_sealed(dir.path(), 0, 60, 256).unwrap();
    assert_eq!(seg.index_lens().0, lens.0);
    assert_eq!(seg.max_timestamp(), max_ts);
    // A sealed segment that ends before the next one starts is corrupt.
    std::fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
    assert!(Segment::open_sealed(dir.path(), 0, 61, 64).is_err());
}

#[test]
fn truncate_to_batch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let seg = filled(dir.path(), 10);
    seg.truncate_to(8, 64).unwrap();
    assert_eq!(seg.next_offset(), 8);
    assert!(seg.find_batch(8).unwrap().is_none());
    assert!(seg.truncate_to(3, 64).is_err(), "not a boundary");
    seg.truncate_to(8, 64).unwrap();
    seg.truncate_to(0, 64).unwrap();
    assert!(seg.is_empty());
}
