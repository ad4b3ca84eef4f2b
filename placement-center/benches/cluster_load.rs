//! Load benchmark (not a timed test): a three-member cluster in this process, on disk,
//! driven by concurrent clients. Reports small-put throughput with p50/p99 latency, then
//! linearizable-read throughput.
//!
//! `cargo bench -p placement-center --bench cluster_load` (release profile). Knobs:
//! `BENCH_CLIENTS` (concurrent requests, default 256), `BENCH_SECS` (per phase, 10),
//! `BENCH_VALUE_BYTES` (128). Under `cargo test` (no `--bench` flag) it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use placement_center::{Node, PlacementConfig};
use placement_client::{pb, ClientConfig, PlacementClient};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn start_cluster(base: &std::path::Path) -> (Vec<Node>, Vec<String>) {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        );
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    let initial = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let identity = common_metrics::Identity::from_lookup("placement-center", "bench", |_| None);
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = PlacementConfig {
            node_id: i as u64 + 1,
            listen: addrs[i].parse().expect("addr"),
            metrics_listen: None,
            data_dir: base.join(format!("node-{}", i + 1)),
            initial_cluster: initial.clone(),
            ..Default::default()
        };
        config.raft.election_timeout_min_ms = 300;
        config.raft.election_timeout_max_ms = 600;
        nodes.push(
            Node::start_with_listeners(config, &identity, listener, None)
                .await
                .expect("node"),
        );
    }
    (nodes, addrs)
}

/// Runs `op` from `clients` concurrent tasks for `secs`; latencies of successful calls.
async fn phase<F, Fut>(
    clients: &[PlacementClient],
    concurrency: usize,
    secs: u64,
    op: F,
) -> (Vec<Duration>, usize, Duration)
where
    F: Fn(PlacementClient, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = clients[t % clients.len()].clone();
        let stop = stop.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut n) = (Vec::new(), 0usize, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let s = Instant::now();
                if op(client.clone(), t, n).await {
                    lat.push(s.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.expect("task");
        all.extend(lat);
        errors += e;
    }
    (all, errors, start.elapsed())
}

fn report(name: &str, mut lat: Vec<Duration>, errors: usize, elapsed: Duration) {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{name}: {} ok, {errors} errors in {:.1}s = {:.0} ops/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn run() {
    let concurrency = env("BENCH_CLIENTS", 256) as usize;
    let secs = env("BENCH_SECS", 10);
    let value_bytes = env("BENCH_VALUE_BYTES", 128) as usize;
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir on disk, so fsync is real");
    let (nodes, addrs) = start_cluster(base.path()).await;
    // A handful of connections, shared by the concurrent requests (HTTP/2 multiplexing).
    let clients: Vec<PlacementClient> = (0..8)
        .map(|_| PlacementClient::new(ClientConfig::new(addrs.clone())).expect("client"))
        .collect();
    for c in &clients {
        while c.find_leader().await.ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("cluster: 3 members in process, data under {}; {concurrency} concurrent requests, {secs}s per phase, {value_bytes}-byte values", base.path().display());
    let value = vec![b'v'; value_bytes];
    let (lat, errors, elapsed) = phase(&clients, concurrency, secs, move |c, t, n| {
        let value = value.clone();
        async move {
            c.put(format!("bench/{t:04}/{:06}", n % 1000), value)
                .await
                .is_ok()
        }
    })
    .await;
    report(
        "put (linearizable write, fsync'd on a quorum)",
        lat,
        errors,
        elapsed,
    );
    let (lat, errors, elapsed) = phase(&clients, concurrency, secs, |c, t, n| async move {
        c.get(format!("bench/{t:04}/{:06}", n % 100)).await.is_ok()
    })
    .await;
    report("get (linearizable read, read-index)", lat, errors, elapsed);
    let (lat, errors, elapsed) = phase(&clients, concurrency, secs, |c, t, n| async move {
        let req = pb::GetRequest {
            key: format!("bench/{t:04}/{:06}", n % 100).into_bytes(),
            serializable: true,
        };
        c.get_with(req).await.is_ok()
    })
    .await;
    report("get (serializable read, local)", lat, errors, elapsed);
    for n in nodes {
        n.shutdown().await;
    }
}
