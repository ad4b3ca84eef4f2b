//! The containerised cluster (deploy/compose): nine containers of the image built from
//! this build's binaries, named and aliased like the StatefulSets' pods and configured by
//! the files deploy/k8s mounts. They form the cluster from DNS names whatever the start
//! order, route MQTT between brokers by their container addresses, survive a rolling
//! restart of one container of each service without losing an acknowledged QoS 1 message,
//! and Prometheus scrapes all nine with the shipped rules. Skipped, saying why, when no
//! Docker engine (or no docker-compose) answers.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::docker::{self, build_image, container_ip, docker_ok, ok, repo_root};
use cluster_tests::{prometheus, unique, Client, WAIT};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;

const SERVICES: [&str; 3] = ["placement-center", "journal-server", "mqtt-broker"];
/// How long the whole cluster may take to become ready (nine containers on two cores).
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A compose project of this test, torn down (volumes and images too) however it ends.
struct Stack {
    project: String,
    image: String,
    prometheus_image: String,
}

impl Stack {
    fn command(&self) -> Command {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &self.project, "-f"])
            .arg(repo_root().join("deploy/compose/compose.yaml"))
            .env("ROBUSTMQ_IMAGE", &self.image)
            .env("PROMETHEUS_IMAGE", &self.prometheus_image);
        c
    }

    fn compose(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("docker-compose runs")
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        ok("docker-compose", self.compose(args), args)
    }

    fn container(&self, service: &str) -> String {
        self.compose_ok(&["ps", "-q", service])
    }

    /// `service`'s address and port on the project network.
    fn addr(&self, service: &str, port: u16) -> SocketAddr {
        let container = self.container(service);
        let ip = container_ip(&container);
        format!("{ip}:{port}").parse().unwrap_or_else(|_| {
            panic!(
                "{service} ({container}) has no address {ip:?}; containers:\n{}\nits log:\n{}",
                self.compose_ok(&["ps"]),
                self.logs(service)
            )
        })
    }

    fn logs(&self, service: &str) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "60", service]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until every pod of `services` answers /readyz with 200.
    async fn wait_ready(&self, services: &[&str], within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for service in services {
            for i in 0..3 {
                let pod = format!("{service}-{i}");
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                docker::wait_ready(self.addr(&pod, 9091), left, || self.logs(&pod)).await;
            }
        }
    }

    /// A rolling restart of one pod: SIGTERM, the grace period, start, ready again.
    async fn restart(&self, pod: &str) {
        let t = Instant::now();
        self.compose_ok(&["restart", "-t", "30", pod]);
        // The address may change, as a pod's does: ask again.
        docker::wait_ready(self.addr(pod, 9091), Duration::from_secs(60), || {
            self.logs(pod)
        })
        .await;
        println!(
            "{pod} restarted and ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--timeout", "5"]);
        let _ = docker::docker(&["rmi", "-f", &self.image, &self.prometheus_image]);
    }
}

fn unavailable() -> Option<String> {
    docker::unavailable().or_else(|| {
        let compose = Command::new("docker-compose").arg("version").output();
        if !compose.is_ok_and(|o| o.status.success()) {
            return Some("no docker-compose (apt-get install docker-compose)".into());
        }
        ["/usr/bin/prometheus", "/usr/share/prometheus/web"]
            .iter()
            .find(|p| !std::path::Path::new(p).exists())
            .map(|p| format!("no {p} for the Prometheus image (apt-get install prometheus)"))
    })
}

/// A persistent session (it must not lose what arrives while its broker is busy).
fn persistent(o: &mut MqttOptions) {
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(600));
}

/// Publishes `0, 1, 2, …` at QoS 1 on `topic`, one at a time, until `stop`; returns the
/// sequence numbers acknowledged with success and those refused (with the reason).
async fn publish_sequence(
    mut client: Client,
    topic: String,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, Vec<(u64, PubAckReason)>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        client
            .client
            .publish(&topic, QoS::AtLeastOnce, false, seq.to_string())
            .await
            .expect("PUBLISH queued");
        let reason = client
            .expect(&format!("PUBACK of message {seq}"), |p| match p {
                Packet::PubAck(a) => Some(a.reason),
                _ => None,
            })
            .await;
        if reason == PubAckReason::Success {
            acked.push(seq);
        } else {
            refused.push((seq, reason));
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (acked, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_cluster_forms_from_dns_names_and_survives_a_rolling_restart() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let id = unique("robustmq-compose");
    let stack = Stack {
        project: id.replace('-', ""),
        image: format!("robustmq:{id}"),
        prometheus_image: format!("robustmq-prometheus:{id}"),
    };
    build_image(&stack.image);
    let built = Command::new(repo_root().join("deploy/compose/prometheus-image.sh"))
        .args(["--tag", &stack.prometheus_image])
        .output()
        .expect("prometheus-image.sh runs");
    println!("{}", ok("prometheus-image.sh", built, &[]));

    // The wrong order on purpose: brokers first, then journals, then the placement
    // center. A broker whose placement-center names do not resolve yet keeps retrying.
    stack.compose_ok(&[
        "up",
        "-d",
        "mqtt-broker-0",
        "mqtt-broker-1",
        "mqtt-broker-2",
    ]);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = stack.logs("mqtt-broker-0");
        if log.contains("cannot register in the placement center yet; retrying") {
            assert!(
                !docker::ready(stack.addr("mqtt-broker-0", 9091)).await,
                "ready without a placement center"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never said it retries; its log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.compose_ok(&[
        "up",
        "-d",
        "journal-server-0",
        "journal-server-1",
        "journal-server-2",
    ]);
    let started = Instant::now();
    stack.compose_ok(&["up", "-d"]);
    stack.wait_ready(&SERVICES, READY_WITHIN).await;
    println!(
        "all nine ready {:.1} s after the placement center was started",
        started.elapsed().as_secs_f64()
    );
    // Node ids from the pod ordinals; peers published under their DNS names.
    let log = stack.logs("mqtt-broker-2");
    assert!(
        log.contains("joined the cluster") && log.contains("\"node_id\":3"),
        "mqtt-broker-2 should join as node 3:\n{log}"
    );

    // MQTT across brokers, by the containers' addresses.
    let broker = |i: usize| stack.addr(&format!("mqtt-broker-{i}"), 1883);
    let topic = unique("compose/hello");
    let mut sub = Client::connect(broker(1), &unique("compose-sub")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker(0), &unique("compose-pub")).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"across".to_vec())
        .await;
    assert_eq!(&sub.received().await.payload[..], b"across");
    drop(publisher);

    // A rolling restart of one pod of each service under a steady QoS 1 stream from
    // mqtt-broker-1 to a persistent session on mqtt-broker-2.
    let seq_topic = unique("compose/seq");
    let mut receiver = Client::connect_with(broker(2), &unique("compose-seq"), persistent).await;
    receiver.subscribe(&seq_topic, QoS::AtLeastOnce).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = Client::connect(broker(1), &unique("compose-seq-pub")).await;
    let stream = tokio::spawn(publish_sequence(sender, seq_topic.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The placement center's leader, to make the restart count.
    let mut leader = None;
    for i in 0..3 {
        let pod = format!("placement-center-{i}");
        let text = local_cluster::probe::metrics_text(stack.addr(&pod, 9091))
            .await
            .unwrap_or_default();
        if text
            .lines()
            .any(|l| l.starts_with("robustmq_cluster_leader_status{") && l.ends_with(" 1"))
        {
            leader = Some(pod);
        }
    }
    let leader = leader.expect("a placement-center leader");
    for pod in [leader.as_str(), "journal-server-0", "mqtt-broker-0"] {
        stack.restart(pod).await;
    }
    // The restarted broker serves again, and routes to the others.
    let mut again = Client::connect(broker(0), &unique("compose-again")).await;
    again
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            b"after the restart".to_vec(),
        )
        .await;
    assert_eq!(&sub.received().await.payload[..], b"after the restart");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, refused) = stream.await.expect("the publisher kept its connection");
    println!(
        "{} messages acknowledged during the rolling restart, {} refused: {refused:?}",
        acked.len(),
        refused.len()
    );
    assert!(acked.len() >= 100, "too few messages to say anything");
    let mut got = std::collections::BTreeSet::new();
    let want: std::collections::BTreeSet<u64> = acked.iter().copied().collect();
    while !want.is_subset(&got) {
        let m = receiver.received().await;
        got.insert(
            String::from_utf8_lossy(&m.payload)
                .parse::<u64>()
                .expect("a sequence number"),
        );
    }

    // Prometheus scrapes all nine by their DNS names, with the shipped rules loaded.
    let prom = stack.addr("prometheus", 9090);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus::query(prom, "sum(up)").await;
        let up = up.ok().and_then(|r| {
            r.first()
                .and_then(|s| s["value"][1].as_str().map(str::to_owned))
        });
        if up.as_deref() == Some("9") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus sees {up:?} of 9 targets up; targets: {:?}\n{}",
            prometheus::api(prom, "/api/v1/targets").await,
            stack.logs("prometheus")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rules = prometheus::api(prom, "/api/v1/rules").await.expect("rules");
    let groups = rules["groups"].as_array().cloned().unwrap_or_default();
    assert!(!groups.is_empty(), "no rules loaded: {rules}");
    for g in &groups {
        for r in g["rules"].as_array().into_iter().flatten() {
            assert_ne!(r["health"], "err", "rule failing: {r}");
        }
    }

    // SIGTERM drains every service: exit status 0.
    stack.compose_ok(&["stop", "-t", "30"]);
    for service in SERVICES {
        for i in 0..3 {
            let pod = format!("{service}-{i}");
            let code = docker_ok(&[
                "inspect",
                "-f",
                "{{.State.ExitCode}}",
                &stack.container(&pod),
            ]);
            assert_eq!(code, "0", "{pod} exit status; log:\n{}", stack.logs(&pod));
        }
    }
}
