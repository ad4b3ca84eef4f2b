//! `--alertmanager`: Debian's Alertmanager (`prometheus-alertmanager`, or `alertmanager`
//! from upstream) with the shipped routing (`deploy/alertmanager/alertmanager.yml`), and
//! the webhook it notifies served here: every notification is printed on the console.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::binaries::find_on_path;
use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::spec::LaunchSpec;
use crate::ClusterPlan;

/// The shipped configuration, carried in the binary.
pub const CONFIG: &str = include_str!("../../deploy/alertmanager/alertmanager.yml");
/// The webhook URL in [`CONFIG`], replaced by the plan's.
const DEFAULT_WEBHOOK: &str = "http://127.0.0.1:9095/alerts";
/// Largest notification body accepted.
const MAX_BODY: usize = 4 << 20;

/// [`CONFIG`] with the webhook on `plan.alert_webhook`.
pub fn render_config(plan: &ClusterPlan) -> String {
    CONFIG.replace(
        DEFAULT_WEBHOOK,
        &format!("http://{}/alerts", plan.alert_webhook),
    )
}

/// Starts Alertmanager on `plan.alertmanager` with data under `<root>/alertmanager`, if
/// it is installed (`Ok(None)` if not), and waits for it to be ready. Its cluster gossip
/// is off, so it binds nothing but its web address.
pub async fn start(plan: &ClusterPlan) -> Result<Option<ChildProcess>> {
    let Some(program) =
        find_on_path("prometheus-alertmanager").or_else(|| find_on_path("alertmanager"))
    else {
        return Ok(None);
    };
    if std::net::TcpListener::bind(plan.alertmanager).is_err() {
        return Err(Error::PortInUse {
            name: "alertmanager".to_owned(),
            addr: plan.alertmanager,
        });
    }
    let dir = plan.root.join("alertmanager");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, render_config(plan))
        .map_err(Error::io(format!("writing {}", config.display())))?;
    let spec = LaunchSpec {
        name: "alertmanager".to_owned(),
        program,
        args: vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address={}", plan.alertmanager),
            // An empty address turns the HA gossip (0.0.0.0:9094 by default) off.
            "--cluster.listen-address=".to_owned(),
        ],
        env: Vec::new(),
        log: plan.log_path("alertmanager"),
        cwd: dir,
    };
    crate::prometheus::spawn_until_ready(spec, plan.alertmanager)
        .await
        .map(Some)
}

/// One alert of a webhook notification.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Notification {
    alerts: Vec<NotifiedAlert>,
}

impl NotifiedAlert {
    /// `FIRING   critical RobustMQTargetDown (mqtt-broker-2): summary`.
    pub fn line(&self) -> String {
        let label = |k: &str| self.labels.get(k).map(String::as_str).unwrap_or("");
        let target = match (label("pod"), label("namespace")) {
            ("", "") => String::new(),
            ("", ns) => format!(" ({ns})"),
            (pod, _) => format!(" ({pod})"),
        };
        format!(
            "{:<8} {:<8} {}{target}: {}",
            self.status.to_uppercase(),
            label("severity"),
            label("alertname"),
            self.annotations
                .get("summary")
                .map(String::as_str)
                .unwrap_or("")
        )
    }
}

/// The webhook Alertmanager notifies: prints every alert it is told about and keeps them.
#[derive(Debug)]
pub struct Webhook {
    received: Arc<Mutex<Vec<NotifiedAlert>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Serves `POST /alerts` on `addr`.
    pub async fn serve(addr: SocketAddr, print: bool) -> Result<Webhook> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|_| Error::PortInUse {
                name: "alert webhook".to_owned(),
                addr,
            })?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    match handle(stream).await {
                        Ok(alerts) => {
                            for alert in alerts {
                                if print {
                                    println!("alert {}", alert.line());
                                }
                                sink.lock().expect("not poisoned").push(alert);
                            }
                        }
                        Err(e) => eprintln!("alert webhook: {e}"),
                    }
                });
            }
        });
        Ok(Webhook { received, task })
    }

    /// Every alert notified so far.
    pub fn received(&self) -> Vec<NotifiedAlert> {
        self.received.lock().expect("not poisoned").clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.x request, answers it, and returns the alerts of a notification.
async fn handle(stream: TcpStream) -> std::result::Result<Vec<NotifiedAlert>, String> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside the request head".into());
        }
        let line = line.trim_end();
        if first {
            first = false;
            if !line.starts_with("POST ") {
                respond(reader.get_mut(), "405 Method Not Allowed").await;
                return Err(format!("unexpected request {line:?}"));
            }
        }
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
    }
    if length > MAX_BODY {
        respond(reader.get_mut(), "413 Payload Too Large").await;
        return Err(format!("a {length}-byte notification"));
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let parsed = serde_json::from_slice::<Notification>(&body);
    match parsed {
        Ok(n) => {
            respond(reader.get_mut(), "200 OK").await;
            Ok(n.alerts)
        }
        Err(e) => {
            respond(reader.get_mut(), "400 Bad Request").await;
            Err(format!("not an Alertmanager notification: {e}"))
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str) {
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_is_the_plans() {
        assert!(CONFIG.contains(DEFAULT_WEBHOOK));
        let plan = ClusterPlan::local_with_offset("r", 7).unwrap();
        let text = render_config(&plan);
        assert!(
            text.contains("url: \"http://127.0.0.1:9102/alerts\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn prints_and_keeps_notified_alerts() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let hook = Webhook::serve(addr, false).await.unwrap();
        let body = r#"{"version":"4","status":"firing","receiver":"webhook","alerts":[
            {"status":"firing","labels":{"alertname":"RobustMQTargetDown","severity":"warning","pod":"mqtt-broker-2"},
             "annotations":{"summary":"mqtt-broker-2 (mqtt-broker) cannot be scraped"},"startsAt":"2026-12-06T00:00:00Z"}]}"#;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while hook.received().is_empty() && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        let alerts = hook.received();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].line(),
            "FIRING   warning  RobustMQTargetDown (mqtt-broker-2): mqtt-broker-2 (mqtt-broker) cannot be scraped"
        );
    }

    #[tokio::test]
    async fn a_bad_notification_is_refused() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let hook = Webhook::serve(addr, false).await.unwrap();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /alerts HTTP/1.1\r\nContent-Length: 5\r\n\r\nnope!")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(hook.received().is_empty());
    }
}
