//! What the end-to-end cluster tests share: starting a cluster of the real debug
//! binaries on free loopback ports in a temp dir ([`start_cluster`]), and a small MQTT 5
//! client over rumqttc ([`Client`]) whose waits all have deadlines.
//!
//! The binaries are the ones `cargo test --workspace` builds (`target/debug`); when one
//! is missing (this crate tested alone) it is built first.

mod client;
pub mod docker;
pub mod prometheus;

pub use client::{Client, Received};

use std::path::PathBuf;
use std::time::Duration;

use local_cluster::{ClusterPlan, LocalCluster};

/// Deadline for something that must happen.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long to watch for something that must NOT happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// A service binary the tests run (`mqtt-broker`, ...), built if missing.
pub fn binary(name: &str) -> PathBuf {
    let dir = bin_dir();
    ensure_binaries(&dir);
    dir.join(name)
}

/// Where cargo put the workspace's debug binaries.
fn bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug")
}

/// Builds the three service binaries if any is missing.
fn ensure_binaries(dir: &std::path::Path) {
    let names = ["placement-center", "journal-server", "mqtt-broker"];
    if names.iter().all(|n| dir.join(n).exists()) {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--bins"])
        .args(names.iter().flat_map(|n| ["-p", n]))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the service binaries failed");
}

/// A running cluster and the temp dir holding its data and logs (kept while it runs).
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// The MQTT address of broker `node` (1-based).
    pub fn mqtt(&self, node: u64) -> std::net::SocketAddr {
        self.cluster.mqtt_addrs()[node as usize - 1]
    }

    /// The sum of metric `name`'s samples on broker `node`'s `/metrics` (0 when absent).
    pub async fn broker_metric(&self, node: u64, name: &str) -> f64 {
        let addr = self
            .cluster
            .node(local_cluster::Service::MqttBroker, node)
            .expect("broker exists")
            .metrics;
        let text = local_cluster::probe::metrics_text(addr)
            .await
            .unwrap_or_default();
        local_cluster::metrics_text::sum_samples(&text, name).unwrap_or(0.0)
    }

    /// Runs `mqtt-broker <args> --placement-endpoints ...` (an admin command such as
    /// `cluster-user`) with `stdin`; its exit status and stderr.
    pub fn admin(&self, args: &[&str], stdin: &str) -> (bool, String) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let endpoints: Vec<String> = self
            .cluster
            .placement_endpoints()
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut child = Command::new(binary("mqtt-broker"))
            .args(args)
            .args(["--placement-endpoints", &endpoints.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqtt-broker runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin written");
        let out = child.wait_with_output().expect("mqtt-broker exits");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The placement center's leader as its status reports it (0: none known).
    pub async fn placement_leader(&self) -> u64 {
        self.cluster
            .placement_client()
            .status()
            .await
            .expect("placement status")
            .leader_id
    }

    /// The log of a process, e.g. `mqtt-broker-2`, for failure messages.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.cluster.plan().log_path(name)).unwrap_or_default()
    }
}

/// Starts placement center, journal and brokers (three each) on free ports.
pub async fn start_cluster() -> TestCluster {
    start_cluster_with(|_| {}).await
}

/// [`start_cluster`] with the plan changed by `tweak` first (extra environment, broker
/// flags or config).
pub async fn start_cluster_with(tweak: impl Fn(&mut ClusterPlan)) -> TestCluster {
    let bins = bin_dir();
    ensure_binaries(&bins);
    // Free ports are chosen by binding port 0 and letting go, so another process (a
    // test running beside this one) can take one before our child binds it. That shows
    // as a child exiting at start-up; a new plan on new ports gets past it.
    let mut attempt = 1;
    loop {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut plan = ClusterPlan::ephemeral(dir.path().join("cluster"))
            .expect("free ports")
            .with_bin_dir(bins.clone());
        tweak(&mut plan);
        match LocalCluster::start(plan).await {
            Ok(cluster) => return TestCluster { cluster, dir },
            Err(
                e @ (local_cluster::Error::ExitedEarly { .. }
                | local_cluster::Error::PortInUse { .. }),
            ) if attempt < 3 => {
                eprintln!("cluster start attempt {attempt} failed, retrying on new ports: {e}");
                attempt += 1;
            }
            Err(e) => panic!("the cluster starts: {e}"),
        }
    }
}

/// A short random suffix for client ids and topics, so tests never share names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
