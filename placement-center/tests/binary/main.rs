//! The real binary: three processes started from the command line form a cluster;
//! SIGKILL the leader, the others elect a new one and keep every acknowledged write; the
//! killed member restarts and catches up. Children are killed on drop; readiness is
//! polled on `/readyz`; a failure prints the children's logs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use placement_client::{ClientConfig, PlacementClient};

const WAIT: Duration = Duration::from_secs(30);

/// A child process killed when dropped; its output goes to a log file.
struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Member {
    id: u64,
    grpc: SocketAddr,
    metrics: SocketAddr,
}

fn spawn(m: &Member, initial: &str, data: &Path) -> Proc {
    let log = data.join(format!("node-{}.log", m.id));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_placement-center"))
        .args(["--node-id", &m.id.to_string()])
        .args(["--listen", &m.grpc.to_string()])
        .args(["--metrics-listen", &m.metrics.to_string()])
        .args([
            "--data-dir",
            data.join(format!("node-{}", m.id)).to_str().unwrap(),
        ])
        .args(["--initial-cluster", initial])
        .args(["--log-format", "json"])
        .env("POD_NAME", format!("placement-center-{}", m.id))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("placement-center binary starts");
    Proc { child, log }
}

/// `GET path` over HTTP/1.0; the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

fn logs(procs: &[Option<Proc>]) -> String {
    procs
        .iter()
        .flatten()
        .map(|p| {
            format!(
                "--- {}\n{}",
                p.log.display(),
                std::fs::read_to_string(&p.log).unwrap_or_default()
            )
        })
        .collect()
}

/// Polls `f` until it yields `Some`; panics with the logs after [`WAIT`].
fn wait_for<T>(what: &str, procs: &[Option<Proc>], mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", logs(procs));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an unlabelled-or-identity-labelled sample in Prometheus text.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn three_processes_form_a_cluster_survive_a_sigkill_of_the_leader_and_the_victim_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<Member> = (1..=3)
        .map(|id| Member {
            id,
            grpc: SocketAddr::from(([127, 0, 0, 1], free_port())),
            metrics: SocketAddr::from(([127, 0, 0, 1], free_port())),
        })
        .collect();
    let initial = members
        .iter()
        .map(|m| format!("{}={}", m.id, m.grpc))
        .collect::<Vec<_>>()
        .join(",");
    // Started in reverse order: bootstrap does not depend on who comes first.
    let mut procs: Vec<Option<Proc>> = vec![None, None, None];
    for i in (0..3).rev() {
        procs[i] = Some(spawn(&members[i], &initial, dir.path()));
    }
    for m in &members {
        wait_for("/readyz to answer 200", &procs, || {
            (http_get(m.metrics, "/readyz")?.0 == 200).then_some(())
        });
    }
    let leader = wait_for("one member to report leader_status 1", &procs, || {
        let leaders: Vec<usize> = (0..3)
            .filter(|&i| {
                http_get(members[i].metrics, "/metrics")
                    .and_then(|(_, body)| metric(&body, "robustmq_cluster_leader_status"))
                    == Some(1.0)
            })
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    });
    let (_, body) = http_get(members[leader].metrics, "/metrics").unwrap();
    assert_eq!(
        metric(&body, "robustmq_cluster_nodes_total"),
        Some(3.0),
        "{body}"
    );
    assert!(
        body.contains("robustmq_raft_write_duration_seconds_bucket"),
        "{body}"
    );
    assert!(body.contains("robustmq_storage_disk_usage_bytes"), "{body}");
    assert!(
        body.contains("robustmq_raft_replication_lag_entries{"),
        "{body}"
    );
    assert!(
        body.contains("robustmq_grpc_server_handled_total{"),
        "{body}"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Channels are created inside the runtime (tonic spawns their connection tasks).
    let _runtime = rt.enter();
    let endpoints: Vec<String> = members.iter().map(|m| m.grpc.to_string()).collect();
    let client =
        PlacementClient::new(ClientConfig::new(endpoints).with_timeout(Duration::from_secs(15)))
            .unwrap();
    rt.block_on(async {
        for i in 0..20 {
            client
                .put(format!("bin/{i:02}"), format!("{i}"))
                .await
                .unwrap();
        }
    });

    // SIGKILL the leader: no graceful anything.
    drop(procs[leader].take());
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    wait_for("a new leader among the survivors", &procs, || {
        survivors.iter().copied().find(|&i| {
            http_get(members[i].metrics, "/metrics")
                .and_then(|(_, b)| metric(&b, "robustmq_cluster_leader_status"))
                == Some(1.0)
        })
    });
    rt.block_on(async {
        assert_eq!(
            client.range("bin/", 0).await.unwrap().count,
            20,
            "acknowledged writes survive"
        );
        client.put("bin/after", "x").await.unwrap();
    });

    // Restart the victim on the same data directory: it rejoins and catches up.
    procs[leader] = Some(spawn(&members[leader], &initial, dir.path()));
    let only_victim =
        PlacementClient::new(ClientConfig::new([members[leader].grpc.to_string()])).unwrap();
    wait_for("the restarted member to catch up", &procs, || {
        rt.block_on(async {
            let req = placement_client::pb::GetRequest {
                key: b"bin/after".to_vec(),
                serializable: true,
            };
            only_victim.get_with(req).await.ok()?.kv
        })
    });

    // SIGTERM: graceful shutdown, exit 0.
    let mut p = procs[survivors[0]].take().unwrap();
    let pid = p.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_for("exit after SIGTERM", &procs, || {
        p.child.try_wait().ok().flatten()
    });
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        std::fs::read_to_string(&p.log).unwrap_or_default()
    );
}
