//! Small real runs of mqtt-bench against the workspace's broker started in process on
//! 127.0.0.1:0: every message accounted for, counts that add up.

use std::net::SocketAddr;
use std::time::Duration;

use mqtt_bench::cli::{Cli, Command};
use mqtt_bench::client::tls::TlsSettings;
use mqtt_bench::{Kind, Report, RunOptions};
use mqtt_broker::config::{ListenerConfig, ListenerProtocol};
use mqtt_broker::{BrokerConfig, Server};

/// A broker on an ephemeral loopback port, stopped when dropped.
struct Broker {
    addrs: Vec<(ListenerProtocol, SocketAddr)>,
    stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let mut tls = ListenerConfig::tcp("127.0.0.1:0".parse().unwrap());
        tls.protocol = ListenerProtocol::Tls;
        tls.tls_cert = Some(cert_path);
        tls.tls_key = Some(key_path);
        let config = BrokerConfig {
            listeners: vec![ListenerConfig::tcp("127.0.0.1:0".parse().unwrap()), tls],
            metrics_listen: None,
            ..Default::default()
        };
        let identity = common_metrics::Identity::from_env("mqtt-broker", "test");
        let server = Server::bind(config, &identity).await.unwrap();
        let addrs = server.mqtt_addrs();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addrs,
            stop,
            _dir: dir,
        }
    }

    fn addr(&self, protocol: ListenerProtocol) -> String {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .unwrap()
            .1
            .to_string()
    }
}

/// Parses a command line as the binary would and runs it (bounded by a timeout).
async fn run(args: &[&str], tls: Option<TlsSettings>) -> Report {
    let cli = <Cli as clap::Parser>::try_parse_from(
        std::iter::once("mqtt-bench").chain(args.iter().copied()),
    )
    .unwrap();
    let (kind, a) = match cli.command {
        Command::FanIn(a) => (Kind::FanIn, a),
        Command::FanOut(a) => (Kind::FanOut, a),
        Command::P2p(a) => (Kind::P2p, a),
        Command::Conn(a) => (Kind::Conn, a),
        Command::Pub(a) => (Kind::Pub, a),
        other => panic!("not used here: {other:?}"),
    };
    let scenario = a.scenario(kind).unwrap();
    let opts = RunOptions {
        client: a.client,
        tls,
        progress: false,
        target: "in-process broker".into(),
    };
    tokio::time::timeout(Duration::from_secs(60), mqtt_bench::run(&scenario, &opts))
        .await
        .expect("the run finishes in time")
        .expect("the run completes")
}

fn assert_complete(report: &Report, qos: &str, expected: u64) {
    let r = &report.by_qos[qos];
    assert!(!report.failed(), "{}", report.table(false));
    assert_eq!(r.tally.expected, expected, "{}", report.table(false));
    assert_eq!(r.tally.received, expected);
    assert_eq!((r.tally.lost, r.tally.duplicated), (0, 0));
    assert_eq!(r.acked, r.sent);
    assert_eq!(r.latency.count, expected);
    assert!(r.latency.p50_us > 0 && r.latency.p50_us <= r.latency.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_qos1_loses_nothing() {
    let broker = Broker::start().await;
    let addr = broker.addr(ListenerProtocol::Tcp);
    let report = run(
        &[
            "p2p",
            "-a",
            &addr,
            "--pairs",
            "4",
            "-q",
            "1",
            "-n",
            "100",
            "--inflight",
            "8",
        ],
        None,
    )
    .await;
    assert_complete(&report, "1", 400);
    assert_eq!(report.sent, 400);
    assert_eq!(report.connections.connected, 8);
    assert!(report.receive_rate > 0.0);
    let timeline_sent: u64 = report.timeline.iter().map(|s| s.sent).sum();
    let timeline_received: u64 = report.timeline.iter().map(|s| s.received).sum();
    assert_eq!((timeline_sent, timeline_received), (400, 400));
    let _ = broker.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_qos2_mqtt5_and_shared_fan_in() {
    let broker = Broker::start().await;
    let addr = broker.addr(ListenerProtocol::Tcp);
    let report = run(
        &[
            "fan-out", "-a", &addr, "-s", "3", "-q", "2", "-n", "100", "--mqtt", "5", "--size",
            "512",
        ],
        None,
    )
    .await;
    assert_complete(&report, "2", 300);
    // A shared group of 2 counts as one receiver: each message once across the group.
    let report = run(
        &[
            "fan-in",
            "-a",
            &addr,
            "-p",
            "3",
            "-s",
            "2",
            "--shared",
            "-q",
            "1",
            "-n",
            "50",
            "--persistent",
        ],
        None,
    )
    .await;
    assert_complete(&report, "1", 150);
    let _ = broker.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rate_limited_and_rumqttc_client() {
    let broker = Broker::start().await;
    let tls_addr = broker.addr(ListenerProtocol::Tls);
    let tls = TlsSettings::new(None, true, "localhost").unwrap();
    let report = run(
        &[
            "p2p",
            "-a",
            &tls_addr,
            "--pairs",
            "2",
            "-q",
            "1",
            "-n",
            "20",
            "--rate",
            "200",
            "--tls",
            "--insecure",
        ],
        Some(tls),
    )
    .await;
    assert_complete(&report, "1", 40);
    // 20 messages at 200/s take about 0.1 s: the rate limit holds.
    assert!(report.publish_secs >= 0.09, "{}", report.publish_secs);

    let addr = broker.addr(ListenerProtocol::Tcp);
    let report = run(
        &[
            "fan-in", "-a", &addr, "-p", "2", "-q", "1", "-n", "100", "--client", "rumqttc",
        ],
        None,
    )
    .await;
    assert_eq!(report.client, "rumqttc");
    assert_complete(&report, "1", 200);

    let report = run(
        &["conn", "-a", &addr, "-c", "50", "--conn-rate", "500"],
        None,
    )
    .await;
    assert_eq!(report.connections.connected, 50);
    assert!(
        report.connections.setup_rate_per_s <= 600.0,
        "{}",
        report.connections.setup_rate_per_s
    );
    assert!(!report.failed());
    let _ = broker.stop.send(());
}
