//! Test harness: in-process servers, real `journal-server` processes (killed on drop,
//! output kept for failure messages), configs, ports and readiness probes. No sleeps
//! for readiness: everything waits for `/readyz` or for a condition, with a deadline.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use journal_server::config::{JournalConfig, ShardConfig};
use journal_server::Server;
use robustmq_proto::journal as pb;
use robustmq_proto::journal::journal_client::JournalClient as Rpc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

pub const STARTUP: Duration = Duration::from_secs(30);
pub const WAIT: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A standalone config on ephemeral ports with the given shards.
pub fn standalone(data_dir: &Path, shards: &[&str]) -> JournalConfig {
    let mut c = JournalConfig {
        listen: loopback(0),
        metrics_listen: Some(loopback(0)),
        data_dir: data_dir.to_owned(),
        shards: shards
            .iter()
            .map(|s| ShardConfig {
                name: (*s).to_owned(),
                replicas: vec![],
            })
            .collect(),
        ..JournalConfig::default()
    };
    c.telemetry.identity_labels = false;
    c
}

/// A server running in this process.
pub struct InProcess {
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), journal_server::JournalError>>,
}

impl InProcess {
    /// Starts a server and waits until `/readyz` says ready.
    pub async fn start(config: JournalConfig) -> Self {
        let s = Self::spawn(config).await;
        wait_ready(s.metrics, STARTUP, String::new).await;
        s
    }

    /// Starts a server without waiting for it to be ready.
    pub async fn spawn(config: JournalConfig) -> Self {
        let identity = common_metrics::Identity::from_lookup("journal-server", "test", |_| None);
        let server = Server::bind(config, &identity).await.expect("server binds");
        let grpc = server.grpc_addr();
        let metrics = server.metrics_addr().expect("metrics enabled");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            grpc,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    pub async fn client(&self) -> Rpc<Channel> {
        connect(self.grpc).await
    }

    /// Graceful shutdown; panics if the server fails.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result");
    }
}

pub async fn connect(addr: SocketAddr) -> Rpc<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    Rpc::new(channel)
}

/// GET `path` on `addr`: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `/readyz` until 200.
pub async fn wait_ready(metrics: SocketAddr, within: Duration, output: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some((200, _)) = http_get(metrics, "/readyz").await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {within:?}\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn record(payload: impl Into<Vec<u8>>) -> pb::Record {
    pb::Record {
        payload: payload.into(),
        ..Default::default()
    }
}

/// A real `journal-server` process, SIGKILLed when dropped.
pub struct Process {
    pub child: Child,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    logs: tempfile::TempDir,
}

impl Process {
    /// Starts the binary with `config` written to a file (ports inside it).
    pub fn spawn(config_text: &str, grpc: SocketAddr, metrics: SocketAddr) -> Self {
        Self::spawn_with_args(config_text, grpc, metrics, &[])
    }

    /// Like [`Process::spawn`], with extra command-line arguments.
    pub fn spawn_with_args(
        config_text: &str,
        grpc: SocketAddr,
        metrics: SocketAddr,
        args: &[&str],
    ) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let config = logs.path().join("journal.toml");
        std::fs::write(&config, config_text).unwrap();
        let out = std::fs::File::create(logs.path().join("stdout")).unwrap();
        let err = std::fs::File::create(logs.path().join("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_journal-server"))
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .args(args)
            .env_remove("JOURNAL_SERVER_CONFIG")
            .env_remove("JOURNAL_SERVER_LISTEN")
            .env_remove("JOURNAL_SERVER_METRICS_LISTEN")
            .env_remove("JOURNAL_SERVER_DATA_DIR")
            .env_remove("JOURNAL_SERVER_NODE_ID")
            .env_remove("JOURNAL_SERVER_PLACEMENT_ENDPOINTS")
            .env("RUST_LOG", "info,journal_server=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the journal-server binary starts");
        Self {
            child,
            grpc,
            metrics,
            logs,
        }
    }

    /// stdout and stderr so far.
    pub fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("journal-server exited early ({status})\n{}", self.output());
            }
            if let Some((200, _)) = http_get(self.metrics, "/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {STARTUP:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then asserts a clean exit (status 0) within 15 s.
    pub async fn terminate_cleanly(&mut self) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = eventually(Duration::from_secs(15), "exit after SIGTERM", || {
            let status = self.child.try_wait().unwrap();
            async move { status }
        })
        .await;
        assert!(status.success(), "exit status {status}\n{}", self.output());
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config file for node `id` of a cluster described by `nodes` (id, grpc, metrics).
pub fn cluster_config(
    id: u64,
    nodes: &[(u64, SocketAddr, SocketAddr)],
    data_dir: &Path,
    shards: &[(&str, &[u64])],
) -> String {
    let (_, grpc, metrics) = nodes.iter().find(|n| n.0 == id).unwrap();
    let mut text = format!(
        "node_id = {id}\nlisten = \"{grpc}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = {:?}\n\n\
         [replication]\nelection_timeout_ms = 600\nheartbeat_interval_ms = 100\nfetch_max_wait_ms = 200\n\
         replica_lag_max_ms = 1500\nack_timeout_ms = 4000\npeer_timeout_ms = 500\n\n\
         [telemetry]\nidentity_labels = false\n\n",
        data_dir.display().to_string()
    );
    for (nid, ngrpc, _) in nodes {
        text.push_str(&format!("[[nodes]]\nid = {nid}\naddr = \"{ngrpc}\"\n\n"));
    }
    for (name, replicas) in shards {
        text.push_str(&format!(
            "[[shards]]\nname = \"{name}\"\nreplicas = {replicas:?}\n\n"
        ));
    }
    text
}

/// Standalone config text for the binary.
pub fn standalone_text(
    grpc: SocketAddr,
    metrics: SocketAddr,
    data_dir: &Path,
    shards: &[&str],
) -> String {
    let mut text = format!(
        "node_id = 1\nlisten = \"{grpc}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = {:?}\n\n[telemetry]\nidentity_labels = false\n\n",
        data_dir.display().to_string()
    );
    for name in shards {
        text.push_str(&format!("[[shards]]\nname = \"{name}\"\n\n"));
    }
    text
}
