//! Starts clusters of in-process nodes on ephemeral ports, each with its own temp dir,
//! and polls (never sleeps) for the states tests wait on.

use std::future::Future;
use std::time::{Duration, Instant};

use placement_center::{Node, PlacementConfig};
use placement_client::{ClientConfig, PlacementClient};
use tokio::net::TcpListener;

/// How long a test waits for a state before failing.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub nodes: Vec<Option<Node>>,
    pub configs: Vec<PlacementConfig>,
    _dirs: Vec<tempfile::TempDir>,
}

fn identity() -> common_metrics::Identity {
    common_metrics::Identity::from_lookup("placement-center", "test", |_| None)
}

/// Fast timings for tests.
pub fn test_config(
    id: u64,
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
) -> PlacementConfig {
    let mut c = PlacementConfig {
        node_id: id,
        listen,
        metrics_listen: None,
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.raft.election_timeout_min_ms = 200;
    c.raft.election_timeout_max_ms = 400;
    c.raft.heartbeat_interval_ms = 50;
    c.raft.request_timeout_ms = 3_000;
    c
}

impl Cluster {
    /// Starts `n` members that bootstrap together; `tweak` adjusts each config.
    pub async fn start(n: u64, tweak: impl Fn(&mut PlacementConfig)) -> Cluster {
        common_metrics::init_for_tests();
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addrs: Vec<_> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        let initial = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            configs: Vec::new(),
            _dirs: Vec::new(),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = test_config(i as u64 + 1, dir.path(), addrs[i]);
            config.initial_cluster = initial.clone();
            tweak(&mut config);
            let node = Node::start_with_listeners(config.clone(), &identity(), listener, None)
                .await
                .expect("node starts");
            cluster.nodes.push(Some(node));
            cluster.configs.push(config);
            cluster._dirs.push(dir);
        }
        cluster
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node running")
    }

    /// A client of every member.
    pub fn client(&self) -> PlacementClient {
        let endpoints: Vec<String> = self.configs.iter().map(|c| c.listen.to_string()).collect();
        PlacementClient::new(ClientConfig::new(endpoints).with_timeout(Duration::from_secs(10)))
            .expect("client")
    }

    /// A client of member `i` only, with a short deadline.
    pub fn client_of(&self, i: usize, timeout: Duration) -> PlacementClient {
        PlacementClient::new(
            ClientConfig::new([self.configs[i].listen.to_string()]).with_timeout(timeout),
        )
        .expect("client")
    }

    /// Index of the member every running member agrees leads.
    pub async fn wait_leader(&self) -> usize {
        wait_for("a leader all running members agree on", || async {
            let mut leader = None;
            for node in self.nodes.iter().flatten() {
                let l = node.core().raft.metrics().borrow().current_leader?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            let l = leader?;
            let idx = (l - 1) as usize;
            self.nodes[idx].as_ref().map(|_| idx)
        })
        .await
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Restarts member `i` on its old address and data directory.
    pub async fn restart(&mut self, i: usize) {
        let config = self.configs[i].clone();
        let listener = wait_for("the old port to be free", || async {
            TcpListener::bind(config.listen).await.ok()
        })
        .await;
        let node = Node::start_with_listeners(config, &identity(), listener, None)
            .await
            .expect("node restarts");
        self.nodes[i] = Some(node);
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

/// Polls `f` every 20 ms until it yields `Some`, or panics after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
