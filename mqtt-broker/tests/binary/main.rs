//! The real `mqtt-broker` binary: it starts with `--listen`/`--metrics-listen`, becomes
//! ready, serves a rumqttc client, exits 0 on SIGTERM; a bad config file makes it exit
//! non-zero naming the file and the field. A kill-on-drop guard owns the child, and the
//! child's output is attached to every failure.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STARTUP: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(10);

/// A running broker process, killed when dropped; its output goes to files in `dir`.
struct BrokerProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl BrokerProcess {
    fn spawn(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .args(args)
            .env_remove("MQTT_BROKER_CONFIG")
            .env_remove("MQTT_BROKER_LISTEN")
            .env_remove("MQTT_BROKER_METRICS_LISTEN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the mqtt-broker binary starts");
        Self { child, dir }
    }

    /// stdout and stderr so far, for failure messages.
    fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// Waits for the process to exit within `within`.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the child may still lose a race for it: retried).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts the binary on free ports and waits for `/readyz` to answer 200.
async fn start_ready() -> (BrokerProcess, SocketAddr) {
    for _attempt in 0..3 {
        let mqtt: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut broker = BrokerProcess::spawn(&[
            "--listen",
            &mqtt.to_string(),
            "--metrics-listen",
            &metrics.to_string(),
            "--log-format",
            "json",
        ]);
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = broker.child.try_wait().unwrap() {
                let output = broker.output();
                assert!(
                    output.contains("in use"),
                    "the broker exited early ({status}):\n{output}"
                );
                break; // a port was taken in between: try other ports
            }
            if http_status(metrics, "/readyz").await == Some(200) {
                return (broker, mqtt);
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {STARTUP:?}\n{}",
                broker.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("could not start the broker on free ports in three attempts");
}

#[tokio::test]
async fn binary_serves_clients_and_exits_cleanly_on_sigterm() {
    let (mut broker, mqtt) = start_ready().await;

    let mut options = rumqttc::MqttOptions::new("bin-client", mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client
        .subscribe("bin/test", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("bin/test", rumqttc::QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    let received = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => return p,
                Ok(_) => {}
                Err(e) => panic!("client error: {e:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message back\n{}", broker.output()));
    assert_eq!(&received.payload[..], b"hello");

    let pid = broker.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = broker.wait_exit(WAIT);
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        broker.output()
    );
    let output = broker.output();
    assert!(output.contains("broker stopped"), "{output}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_config_file_is_reported_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, field) in [
        (
            "typo.toml",
            "[limits]\nmax_pakcet_size = 10\n",
            "max_pakcet_size",
        ),
        ("range.toml", "[limits]\nmaximum_qos = 3\n", "maximum_qos"),
        (
            "tls.toml",
            "[[listeners]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:0\"\n",
            "tls_cert",
        ),
    ] {
        let path = write(dir.path(), name, text);
        let mut broker = BrokerProcess::spawn(&[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ]);
        let status = broker.wait_exit(WAIT);
        let output = broker.output();
        assert!(!status.success(), "{name}: accepted a bad config\n{output}");
        assert!(
            output.contains(name) && output.contains(field),
            "{name}: message must name file and field\n{output}"
        );
    }
}
