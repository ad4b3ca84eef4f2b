//! Crash recovery with the real binary: SIGKILL while appends are in flight, restart on
//! the same data directory, and every acknowledged record is there, once, at the offset
//! it was acknowledged with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use robustmq_proto::journal as pb;

use crate::harness::{connect, eventually, free_port, loopback, record, standalone_text, Process};

/// (offset, payload) pairs the server acknowledged.
type Acked = Arc<Mutex<Vec<(i64, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_appends_loses_no_acknowledged_record() {
    let data = tempfile::tempdir().unwrap();
    let (grpc, metrics) = (loopback(free_port()), loopback(free_port()));
    let text = standalone_text(grpc, metrics, data.path(), &["crash"]);
    let mut server = Process::spawn(&text, grpc, metrics);
    server.wait_ready().await;

    let acked: Acked = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut c = connect(grpc).await;
            for seq in 0.. {
                // Two records per append: both offsets are acknowledged together.
                let payloads = [format!("w{w}-{seq}-a"), format!("w{w}-{seq}-b")];
                let req = pb::AppendRequest {
                    shard: "crash".into(),
                    records: payloads
                        .iter()
                        .map(|p| record(p.as_bytes().to_vec()))
                        .collect(),
                };
                match c.append(req).await {
                    Ok(resp) => {
                        let base = resp.into_inner().base_offset;
                        let mut acked = acked.lock().unwrap();
                        acked.push((base, payloads[0].clone()));
                        acked.push((base + 1, payloads[1].clone()));
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let probe = acked.clone();
    eventually(Duration::from_secs(30), "800 acknowledged records", || {
        let n = probe.lock().unwrap().len();
        async move { (n >= 800).then_some(()) }
    })
    .await;
    server.kill(); // SIGKILL with appends in flight
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    let mut server = Process::spawn(&text, grpc, metrics);
    server.wait_ready().await;
    let mut c = connect(grpc).await;
    let mut log = Vec::new();
    let mut offset = 0;
    loop {
        let resp = c
            .read(pb::ReadRequest {
                shard: "crash".into(),
                offset,
                max_records: 0,
                max_bytes: 0,
            })
            .await
            .unwrap_or_else(|e| panic!("read after restart: {e:?}\n{}", server.output()))
            .into_inner();
        if resp.records.is_empty() {
            break;
        }
        offset = resp.next_offset;
        log.extend(resp.records);
    }
    check_log(&log, &acked);
    assert!(
        log.len() >= acked.len(),
        "{} records stored, {} acknowledged",
        log.len(),
        acked.len()
    );
}

/// Offsets are 0..n without gaps, no payload is stored twice, and every acknowledged
/// record sits at its acknowledged offset.
pub fn check_log(log: &[pb::Record], acked: &[(i64, String)]) {
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "offsets have no gaps or duplicates");
    }
    let mut seen = HashMap::new();
    for r in log {
        let payload = String::from_utf8(r.payload.clone()).unwrap();
        if let Some(first) = seen.insert(payload.clone(), r.offset) {
            panic!("{payload} stored twice, at {first} and {}", r.offset);
        }
    }
    for (offset, payload) in acked {
        let stored = log.get(*offset as usize).unwrap_or_else(|| {
            panic!(
                "acknowledged offset {offset} ({payload}) lost; log has {}",
                log.len()
            )
        });
        assert_eq!(
            std::str::from_utf8(&stored.payload).unwrap(),
            payload,
            "record at acknowledged offset {offset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_closes_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let (grpc, metrics) = (loopback(free_port()), loopback(free_port()));
    let text = standalone_text(grpc, metrics, data.path(), &["t"]);
    let mut server = Process::spawn(&text, grpc, metrics);
    server.wait_ready().await;
    let mut c = connect(grpc).await;
    let resp = c
        .append(pb::AppendRequest {
            shard: "t".into(),
            records: (0..10)
                .map(|i| record(format!("r{i}").into_bytes()))
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.last_offset, 9);

    server.terminate_cleanly().await;
    let output = server.output();
    assert!(output.contains("journal server stopped"), "{output}");
    assert!(!output.contains("recovered a torn"), "{output}");

    let mut server = Process::spawn(&text, grpc, metrics);
    server.wait_ready().await;
    let mut c = connect(grpc).await;
    let read = c
        .read(pb::ReadRequest {
            shard: "t".into(),
            offset: 0,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.records.len(), 10);
    assert!(
        !server.output().contains("recovered a torn"),
        "a clean shutdown leaves no torn tail"
    );
}

#[test]
fn bad_config_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[storage]\nsegment_byts = 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_journal-server"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("segment_byts"),
        "{stderr}"
    );
}
