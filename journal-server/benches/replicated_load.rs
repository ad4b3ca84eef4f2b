//! Load benchmark of replicated appends through gRPC: three journal nodes in this process
//! on loopback (one shard, replication factor 3, acks=all, fsync on), and for comparison
//! one standalone node (replication factor 1). Concurrent clients append one record per
//! request for a fixed time; prints records/s, MB/s and latency percentiles.
//!
//! Not a criterion benchmark (a load test has no "iteration"); harness = false.
//! Run: `CARGO_TARGET_DIR=/work/target-js cargo bench -p journal-server --bench replicated_load`
//! (`LOAD_SECS` sets the duration of each run, default 5.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use journal_server::client::JournalClient;
use journal_server::config::{JournalConfig, NodeConfig, ShardConfig};
use journal_server::Server;
use robustmq_proto::journal as pb;

const SHARD: &str = "load";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `n` nodes holding one shard replicated on all of them; returns their gRPC
/// addresses and the handles that stop them.
async fn cluster(
    n: u64,
    dirs: &[tempfile::TempDir],
) -> (Vec<String>, Vec<tokio::sync::oneshot::Sender<()>>) {
    let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
    let nodes: Vec<NodeConfig> = if n == 1 {
        Vec::new()
    } else {
        (1..=n)
            .zip(&addrs)
            .map(|(id, a)| NodeConfig {
                id,
                addr: a.to_string(),
            })
            .collect()
    };
    let mut stops = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let mut config = JournalConfig {
            node_id: i as u64 + 1,
            listen: *addr,
            metrics_listen: None,
            data_dir: dirs[i].path().to_owned(),
            nodes: nodes.clone(),
            shards: vec![ShardConfig {
                name: SHARD.into(),
                replicas: (1..=n).collect(),
            }],
            ..JournalConfig::default()
        };
        config.replication.election_timeout_ms = 500;
        config.replication.fetch_max_wait_ms = 200;
        let identity = common_metrics::Identity::from_lookup("journal-server", "bench", |_| None);
        let server = Server::bind(config, &identity).await.expect("bind");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        stops.push(stop);
    }
    (addrs.iter().map(ToString::to_string).collect(), stops)
}

struct Outcome {
    records: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn load(addrs: &[String], clients: usize, size: usize, batch: usize, secs: u64) -> Outcome {
    let mut probe = JournalClient::new(addrs.to_vec()).with_retry_for(Duration::from_secs(30));
    let _ = probe.find_leader(SHARD).await.expect("leader");
    // Warm up until the ISR is complete and appends succeed.
    while probe
        .append(SHARD, vec![pb::Record::default()])
        .await
        .is_err()
    {}
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, latencies, addrs) = (stop.clone(), latencies.clone(), addrs.to_vec());
            tokio::spawn(async move {
                let mut client = JournalClient::new(addrs);
                let mut mine = Vec::new();
                let payload = vec![0x5a; size];
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let records = (0..batch)
                        .map(|_| pb::Record {
                            payload: payload.clone(),
                            ..Default::default()
                        })
                        .collect();
                    if client.append(SHARD, records).await.is_ok() {
                        mine.push(t.elapsed());
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    Outcome {
        records: latencies.len() * batch,
        latencies,
        elapsed,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "appends through gRPC, fsync on, acks=all, {secs} s per row (latency = one Append request)"
    );
    println!("| replicas | clients | records/Append | record | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for replicas in [1u64, 3] {
        for size in [64usize, 1024] {
            for clients in [1usize, 32, 128] {
                runs.push((replicas, size, clients, 1usize));
            }
            runs.push((replicas, size, 32, 100));
        }
    }
    rt.block_on(async {
        for (replicas, size, clients, batch) in runs {
                    let dirs: Vec<_> = (0..replicas).map(|_| tempfile::tempdir().unwrap()).collect();
                    let (addrs, stops) = cluster(replicas, &dirs).await;
                    let o = load(&addrs, clients, size, batch, secs).await;
                    let rate = o.records as f64 / o.elapsed.as_secs_f64();
                    println!(
                        "| {replicas} | {clients} | {batch} | {size} B | {rate:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                        rate * size as f64 / 1e6,
                        pct(&o.latencies, 0.50),
                        pct(&o.latencies, 0.99),
                        pct(&o.latencies, 0.999),
                    );
                    for s in stops {
                        let _ = s.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}
