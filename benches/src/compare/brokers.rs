//! Fresh broker processes for `compare`: our release `mqtt-broker`, rumqttd (through
//! `mqtt-bench serve-rumqttd`) and Debian's mosquitto, each with a temporary config on
//! free loopback ports. A [`BrokerProcess`] is killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The brokers `compare` knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    Ours,
    Rumqttd,
    Mosquitto,
}

impl BrokerKind {
    /// Name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Rumqttd => "rumqttd",
            Self::Mosquitto => "mosquitto",
        }
    }
}

/// Settings every broker gets, so that they are comparable.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// QoS 1/2 deliveries in flight per client.
    pub inflight: usize,
    /// Messages queued per client before dropping.
    pub max_queued: usize,
    /// Our broker's runtime worker threads (0: one per CPU).
    pub worker_threads: usize,
    /// Our broker's binary.
    pub ours_bin: PathBuf,
    /// The mosquitto binary, when installed.
    pub mosquitto_bin: Option<PathBuf>,
}

/// A running broker.
pub struct BrokerProcess {
    pub kind: BrokerKind,
    child: Child,
    /// MQTT 3.1.1 address.
    pub v4: SocketAddr,
    /// MQTT 5 address (the same port except for rumqttd, which splits them).
    pub v5: SocketAddr,
    /// Holds the config and log files.
    dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// The broker's process id (for /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the broker has used so far.
    pub fn cpu_secs(&self) -> anyhow::Result<f64> {
        cpu_secs(self.pid())
    }

    /// The end of the broker's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; the broker binds it right after).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Finds mosquitto on PATH or in /usr/sbin (Debian installs it there).
pub fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// Starts a fresh broker and waits until it accepts connections.
pub fn start(kind: BrokerKind, settings: &BrokerSettings) -> anyhow::Result<BrokerProcess> {
    let dir = tempfile::tempdir()?;
    let v4 = free_addr()?;
    let log = std::fs::File::create(dir.path().join("broker.log"))?;
    let mut v5 = v4;
    let mut cmd = match kind {
        BrokerKind::Ours => {
            let metrics = free_addr()?;
            let config = dir.path().join("mqtt-broker.toml");
            std::fs::write(&config, ours_config(v4, metrics, settings))?;
            let mut c = Command::new(&settings.ours_bin);
            c.arg("--config").arg(&config).env("RUST_LOG", "warn");
            c
        }
        BrokerKind::Rumqttd => {
            v5 = free_addr()?;
            let mut c = Command::new(std::env::current_exe()?);
            c.args([
                "serve-rumqttd",
                "--v4",
                &v4.to_string(),
                "--v5",
                &v5.to_string(),
            ])
            .args(["--inflight", &settings.inflight.to_string()]);
            c
        }
        BrokerKind::Mosquitto => {
            let bin = settings
                .mosquitto_bin
                .as_ref()
                .context("mosquitto is not installed")?;
            let config = dir.path().join("mosquitto.conf");
            std::fs::write(&config, mosquitto_config(v4, settings))?;
            let mut c = Command::new(bin);
            c.arg("-c").arg(&config);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", kind.as_str()))?;
    let mut process = BrokerProcess {
        kind,
        child,
        v4,
        v5,
        dir,
    };
    wait_ready(&mut process, Duration::from_secs(15))?;
    Ok(process)
}

fn wait_ready(p: &mut BrokerProcess, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let addrs = [p.v4, p.v5];
    loop {
        if let Some(status) = p.child.try_wait()? {
            anyhow::bail!(
                "{} exited at startup ({status}):\n{}",
                p.kind.as_str(),
                p.log_tail()
            );
        }
        if addrs
            .iter()
            .all(|a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{} not listening after {timeout:?}:\n{}",
                p.kind.as_str(),
                p.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Our broker: defaults (metrics and $SYS on: instrumentation stays on), logs at warn.
pub fn ours_config(mqtt: SocketAddr, metrics: SocketAddr, s: &BrokerSettings) -> String {
    format!(
        "metrics_listen = \"{metrics}\"\n\n[[listeners]]\nprotocol = \"tcp\"\nbind = \"{mqtt}\"\n\n\
         [limits]\nmax_inflight = {}\nmax_queued_messages = {}\n\n\
         [runtime]\nworker_threads = {}\n\n\
         [telemetry]\nlog_format = \"json\"\nlog_filter = \"warn\"\n",
        s.inflight.min(65_535),
        s.max_queued,
        s.worker_threads
    )
}

/// mosquitto: anonymous on loopback, no persistence, the same queue and window.
pub fn mosquitto_config(mqtt: SocketAddr, s: &BrokerSettings) -> String {
    format!(
        "listener {} {}\nallow_anonymous true\npersistence false\n\
         max_queued_messages {}\nmax_inflight_messages {}\n\
         log_dest stderr\nlog_type error\nlog_type warning\n",
        mqtt.port(),
        mqtt.ip(),
        s.max_queued,
        s.inflight
    )
}

/// Clock ticks per second of /proc/PID/stat times (USER_HZ: 100 on Linux, which does
/// not vary by architecture for user space).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) a process has used, in seconds, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// Resident memory (VmRSS) of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BrokerSettings {
        BrokerSettings {
            inflight: 100,
            max_queued: 100_000,
            worker_threads: 1,
            ours_bin: "mqtt-broker".into(),
            mosquitto_bin: None,
        }
    }

    #[test]
    fn our_config_is_accepted_by_the_broker_config_parser() {
        let text = ours_config(
            "127.0.0.1:1883".parse().unwrap(),
            "127.0.0.1:9091".parse().unwrap(),
            &settings(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, text).unwrap();
        let c = mqtt_broker::BrokerConfig::from_file(&path).unwrap();
        assert_eq!(c.limits.max_inflight, 100);
        assert_eq!(c.limits.max_queued_messages, 100_000);
        assert_eq!(c.runtime.worker_threads, 1);
    }

    #[test]
    fn mosquitto_config_listens_on_loopback() {
        let text = mosquitto_config("127.0.0.1:18830".parse().unwrap(), &settings());
        assert!(text.starts_with("listener 18830 127.0.0.1\n"));
        assert!(text.contains("max_inflight_messages 100\n"));
        assert!(text.contains("allow_anonymous true\n"));
    }

    #[test]
    fn rss_and_cpu_of_this_process() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let before = cpu_secs(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = cpu_secs(std::process::id()).unwrap() - before;
        assert!(used > 0.0 && used < 5.0, "{used} {x}");
    }
}
