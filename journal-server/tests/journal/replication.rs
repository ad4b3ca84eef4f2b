//! A three-node cluster of real binaries: the shard leader is SIGKILLed during appends;
//! a new leader takes over, no acknowledged record is lost, offsets have no gaps or
//! duplicates, the surviving follower serves the same log, and the old leader, once
//! restarted, truncates whatever it had that the others did not and converges.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use journal_server::client::JournalClient;
use robustmq_proto::journal as pb;

use crate::crash::check_log;
use crate::harness::{
    cluster_config, connect, eventually, free_port, http_get, loopback, record, Process,
};

const SHARD: &str = "repl";

async fn info(addr: SocketAddr) -> Option<pb::ShardInfo> {
    let mut c = connect(addr).await;
    c.shard_info(pb::ShardInfoRequest {
        shard: SHARD.into(),
    })
    .await
    .ok()?
    .into_inner()
    .info
}

async fn read_all_at(addr: SocketAddr) -> Vec<pb::Record> {
    let mut c = connect(addr).await;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let resp = c
            .read(pb::ReadRequest {
                shard: SHARD.into(),
                offset,
                max_records: 0,
                max_bytes: 0,
            })
            .await
            .expect("read")
            .into_inner();
        if resp.records.is_empty() {
            return out;
        }
        offset = resp.next_offset;
        out.extend(resp.records);
    }
}

fn payloads(records: &[pb::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_during_appends_loses_no_acknowledged_record() {
    let nodes: Vec<(u64, SocketAddr, SocketAddr)> = (1..=3)
        .map(|id| (id, loopback(free_port()), loopback(free_port())))
        .collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let texts: Vec<String> = nodes
        .iter()
        .zip(&dirs)
        .map(|((id, _, _), dir)| cluster_config(*id, &nodes, dir.path(), &[(SHARD, &[1, 2, 3])]))
        .collect();
    let mut procs: Vec<Process> = nodes
        .iter()
        .zip(&texts)
        .map(|((_, grpc, metrics), text)| Process::spawn(text, *grpc, *metrics))
        .collect();
    for p in &mut procs {
        p.wait_ready().await;
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.1.to_string()).collect();

    // A leader with every replica in sync.
    let mut client = JournalClient::new(addrs.clone()).with_retry_for(Duration::from_secs(20));
    let leader_addr = client
        .find_leader(SHARD)
        .await
        .expect("a leader is elected");
    let leader = nodes
        .iter()
        .position(|n| n.1.to_string() == leader_addr)
        .unwrap();
    eventually(Duration::from_secs(20), "a full ISR", || async {
        let i = info(nodes[leader].1).await?;
        (i.replicas.iter().filter(|r| r.in_sync).count() == 3).then_some(())
    })
    .await;

    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, addrs) = (acked.clone(), stop.clone(), addrs.clone());
        writers.push(tokio::spawn(async move {
            let mut client = JournalClient::new(addrs).with_retry_for(Duration::from_secs(20));
            let mut attempt = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A fresh payload per attempt: a failed attempt may or may not have been
                // stored, so retrying the same payload could legitimately duplicate it.
                attempt += 1;
                let payload = format!("w{w}-{attempt}");
                match client
                    .append(SHARD, vec![record(payload.as_bytes().to_vec())])
                    .await
                {
                    Ok(resp) => acked.lock().unwrap().push((resp.base_offset, payload)),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let count = || acked.lock().unwrap().len();
    eventually(Duration::from_secs(30), "acks before the kill", || {
        let n = count();
        async move { (n >= 150).then_some(()) }
    })
    .await;
    procs[leader].kill();
    let at_kill = count();
    let new_leader_addr = eventually(Duration::from_secs(30), "acks from a new leader", || {
        let n = count();
        let addrs = addrs.clone();
        let old = leader_addr.clone();
        async move {
            if n < at_kill + 150 {
                return None;
            }
            let mut c = JournalClient::new(addrs).with_retry_for(Duration::from_secs(5));
            let l = c.find_leader(SHARD).await.ok()?;
            (l != old).then_some(l)
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let new_leader = nodes
        .iter()
        .position(|n| n.1.to_string() == new_leader_addr)
        .unwrap();
    let log = read_all_at(nodes[new_leader].1).await;
    check_log(&log, &acked);
    assert!(log.len() >= acked.len());

    // The surviving follower serves the same committed log (follower reads).
    let follower = (0..3).find(|i| *i != leader && *i != new_leader).unwrap();
    let end = log.len() as i64;
    eventually(
        Duration::from_secs(10),
        "the follower's high watermark",
        || async {
            let i = info(nodes[follower].1).await?;
            (i.end_offset == end).then_some(())
        },
    )
    .await;
    assert_eq!(
        payloads(&read_all_at(nodes[follower].1).await),
        payloads(&log)
    );

    // Metrics on the new leader: it leads one shard, under-replicated while the old
    // leader is down, with a lag gauge per follower node.
    let metric = |text: &str, name: &str, labels: &[(&str, &str)]| {
        common_metrics::testing::find(&common_metrics::testing::parse_metrics(text), name, labels)
    };
    let (_, text) = http_get(nodes[new_leader].2, "/metrics").await.unwrap();
    assert_eq!(
        metric(&text, "robustmq_journal_leader_shards", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "robustmq_journal_under_replicated_shards", &[]),
        Some(1.0),
        "{text}"
    );
    let old_id = nodes[leader].0.to_string();
    assert!(
        metric(
            &text,
            "robustmq_journal_replication_lag_records",
            &[("follower", &old_id)]
        )
        .is_some(),
        "{text}"
    );
    assert!(metric(&text, "robustmq_journal_leader_elections_total", &[]).unwrap() >= 1.0);

    // The old leader comes back, drops any tail the others never had, converges.
    let (_, grpc, metrics) = nodes[leader];
    procs[leader] = Process::spawn(&texts[leader], grpc, metrics);
    procs[leader].wait_ready().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match info(grpc).await {
            Some(i) if i.end_offset == end && i.log_end_offset == end => {
                last = None;
                break;
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if let Some(last) = last {
        panic!(
            "old leader did not converge to {end}: {last:?}\nleader: {:?}\n{}",
            info(nodes[new_leader].1).await,
            procs[leader].output()
        );
    }
    assert_eq!(
        payloads(&read_all_at(grpc).await),
        payloads(&log),
        "{}",
        procs[leader].output()
    );
    let metrics_addr = nodes[new_leader].2;
    eventually(Duration::from_secs(10), "a full ISR again", || async move {
        let (_, text) = http_get(metrics_addr, "/metrics").await?;
        let samples = common_metrics::testing::parse_metrics(&text);
        (common_metrics::testing::find(&samples, "robustmq_journal_under_replicated_shards", &[])
            == Some(0.0))
        .then_some(())
    })
    .await;
}
