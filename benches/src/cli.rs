//! Command-line flags, and their validation into a [`Scenario`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mqtt_codec::{ProtocolVersion, QoS};

use crate::scenario::{parse_duration, Kind, Scenario, Stop};

/// MQTT load generator: connection storms, publish/subscribe load, fan-in, fan-out and
/// point-to-point, with latency, loss and throughput reports; `compare` runs the same
/// scenarios against this workspace's broker, rumqttd and mosquitto.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connection storm: open --clients connections at --conn-rate, hold them, close them.
    Conn(RunArgs),
    /// Publishers only.
    Pub(RunArgs),
    /// Subscribers only (latency and loss are read from the payloads of `mqtt-bench pub`).
    Sub(RunArgs),
    /// N publishers (--publishers) to one subscriber (or a --shared group of --subscribers).
    FanIn(RunArgs),
    /// One publisher (or --publishers) to N subscribers (--subscribers).
    FanOut(RunArgs),
    /// N publisher/subscriber pairs (--pairs), each on its own topic.
    P2p(RunArgs),
    /// Runs scenarios against our broker, rumqttd and mosquitto, one after another.
    Compare(crate::compare::CompareArgs),
    /// Runs rumqttd in this process (used by `compare`; not for direct use).
    #[command(hide = true)]
    ServeRumqttd(crate::compare::rumqttd::ServeArgs),
}

/// The MQTT client implementation driving the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientImpl {
    /// A thin async client on mqtt-codec (the default: see benches/README.md).
    Native,
    /// rumqttc's event loop (MQTT 3.1.1 only here; kept to measure the client itself).
    Rumqttc,
}

/// Protocol version flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MqttVersion {
    #[value(name = "3.1.1", alias = "4")]
    V311,
    #[value(name = "5", alias = "5.0")]
    V5,
}

/// Flags shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Broker address(es), HOST:PORT, comma separated; clients spread over them.
    #[arg(
        long,
        short = 'a',
        value_delimiter = ',',
        default_value = "127.0.0.1:1883"
    )]
    pub addr: Vec<String>,
    /// Addresses for publishers only (default: --addr). E.g. publish on one cluster node…
    #[arg(long, value_delimiter = ',')]
    pub pub_addr: Vec<String>,
    /// …and subscribe on another (default: --addr).
    #[arg(long, value_delimiter = ',')]
    pub sub_addr: Vec<String>,
    /// Publishers (fan-in default 10, fan-out 1, pub 1).
    #[arg(long, short = 'p')]
    pub publishers: Option<usize>,
    /// Subscribers (fan-out default 10, fan-in 1, sub 1).
    #[arg(long, short = 's')]
    pub subscribers: Option<usize>,
    /// Publisher/subscriber pairs of p2p (default 10).
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Clients of a conn storm (default 1000).
    #[arg(long, short = 'c')]
    pub clients: Option<usize>,
    /// Subscribe through one shared-subscription group ($share/mqb/...).
    #[arg(long)]
    pub shared: bool,
    /// QoS of the publishers, comma separated to mix (assigned round robin).
    #[arg(long, short = 'q', value_delimiter = ',', default_value = "0")]
    pub qos: Vec<u8>,
    /// Payload size in bytes (at least 24: sequence number, publisher id, timestamp).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages per second per publisher; 0 = as fast as the broker takes them.
    #[arg(long, short = 'r', default_value_t = 0.0)]
    pub rate: f64,
    /// Run time of the publishers (e.g. 10s, 1m); ignored when --count is given.
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Messages per publisher (instead of --duration).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// MQTT protocol version.
    #[arg(long = "mqtt", value_enum, default_value = "3.1.1")]
    pub version: MqttVersion,
    /// Persistent sessions (clean session / clean start = false).
    #[arg(long)]
    pub persistent: bool,
    /// Session expiry interval of persistent MQTT 5 sessions, seconds.
    #[arg(long, default_value_t = 300)]
    pub session_expiry: u32,
    /// Keep alive, seconds (rumqttd refuses 0).
    #[arg(long, default_value_t = 60)]
    pub keep_alive: u16,
    /// QoS 1/2 messages each publisher keeps in flight.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Connections per second while setting up clients; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub conn_rate: f64,
    /// conn: how long to hold the connections open.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub hold: Duration,
    /// Time allowed at the end for outstanding acknowledgements and deliveries.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain: Duration,
    /// Topic prefix (default: bench/<run id>).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// sub: the filter to subscribe to (default: <prefix>/#).
    #[arg(long)]
    pub filter: Option<String>,
    /// Connect with TLS.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) that signed the broker's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Do not verify the broker's certificate (loopback testing only).
    #[arg(long)]
    pub insecure: bool,
    /// Server name for TLS (default: the host of the address).
    #[arg(long)]
    pub server_name: Option<String>,
    /// Client implementation.
    #[arg(long, value_enum, default_value = "native")]
    pub client: ClientImpl,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of throughput and latency over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar (it is hidden anyway when stdout is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Parses nothing but the defaults of [`RunArgs`].
#[derive(Debug, Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    args: RunArgs,
}

impl RunArgs {
    /// Every flag at its default (`compare` starts from these).
    pub fn parse_defaults() -> Self {
        DefaultsOnly::parse_from(["mqtt-bench"]).args
    }

    /// Validates the flags for a scenario kind.
    pub fn scenario(&self, kind: Kind) -> Result<Scenario, String> {
        let addrs = resolve(&self.addr)?;
        let pick = |list: &[String]| -> Result<Vec<SocketAddr>, String> {
            if list.is_empty() {
                Ok(addrs.clone())
            } else {
                resolve(list)
            }
        };
        if self.qos.is_empty() {
            return Err("--qos: at least one QoS".into());
        }
        let qos = self
            .qos
            .iter()
            .map(|&q| QoS::from_u8(q).ok_or_else(|| format!("--qos {q}: must be 0, 1 or 2")))
            .collect::<Result<Vec<_>, _>>()?;
        if self.size < crate::payload::HEADER_LEN {
            return Err(format!(
                "--size {}: payloads carry a {}-byte header, so at least {}",
                self.size,
                crate::payload::HEADER_LEN,
                crate::payload::HEADER_LEN
            ));
        }
        if self.inflight == 0 || self.inflight > 65_535 {
            return Err("--inflight: 1 to 65535".into());
        }
        let positive = |v: f64, flag: &str| -> Result<Option<f64>, String> {
            match v {
                0.0 => Ok(None),
                v if v.is_finite() && v > 0.0 => Ok(Some(v)),
                _ => Err(format!("{flag}: must be 0 (unlimited) or positive")),
            }
        };
        let (publishers, subscribers) = match kind {
            Kind::Conn => (0, self.clients.unwrap_or(1000)),
            Kind::Pub => (self.publishers.unwrap_or(1), 0),
            Kind::Sub => (0, self.subscribers.unwrap_or(1)),
            Kind::FanIn => (self.publishers.unwrap_or(10), self.subscribers.unwrap_or(1)),
            Kind::FanOut => (self.publishers.unwrap_or(1), self.subscribers.unwrap_or(10)),
            Kind::P2p => {
                let pairs = self.pairs.unwrap_or(10);
                (pairs, pairs)
            }
        };
        if publishers + subscribers == 0 {
            return Err("nothing to run: no publishers and no subscribers".into());
        }
        if self.client == ClientImpl::Rumqttc && (self.version == MqttVersion::V5 || self.tls) {
            return Err("--client rumqttc: only MQTT 3.1.1 over TCP here".into());
        }
        let stop = match self.count {
            Some(0) => return Err("--count: at least 1".into()),
            Some(n) => Stop::Count(n),
            None => Stop::Duration(self.duration),
        };
        Ok(Scenario {
            kind,
            pub_addrs: pick(&self.pub_addr)?,
            sub_addrs: pick(&self.sub_addr)?,
            publishers,
            subscribers,
            shared: self.shared,
            qos,
            payload_size: self.size,
            rate: positive(self.rate, "--rate")?,
            stop,
            version: match self.version {
                MqttVersion::V311 => ProtocolVersion::V3_1_1,
                MqttVersion::V5 => ProtocolVersion::V5,
            },
            clean: !self.persistent,
            session_expiry: if self.persistent {
                self.session_expiry
            } else {
                0
            },
            keep_alive: self.keep_alive,
            inflight: self.inflight,
            conn_rate: positive(self.conn_rate, "--conn-rate")?,
            hold: self.hold,
            drain: self.drain,
            topic_prefix: self.topic_prefix.clone().unwrap_or_default(),
            sub_filter: self.filter.clone(),
        })
    }
}

/// Resolves HOST:PORT strings (first address of each).
fn resolve(list: &[String]) -> Result<Vec<SocketAddr>, String> {
    list.iter()
        .map(|a| {
            a.to_socket_addrs()
                .map_err(|e| format!("address {a:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("address {a:?}: no address found"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Kind, Scenario), String> {
        let cli = Cli::try_parse_from(std::iter::once("mqtt-bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let (kind, a) = match cli.command {
            Command::FanIn(a) => (Kind::FanIn, a),
            Command::FanOut(a) => (Kind::FanOut, a),
            Command::P2p(a) => (Kind::P2p, a),
            Command::Conn(a) => (Kind::Conn, a),
            Command::Pub(a) => (Kind::Pub, a),
            Command::Sub(a) => (Kind::Sub, a),
            _ => return Err("not a scenario".into()),
        };
        Ok((kind, a.scenario(kind)?))
    }

    #[test]
    fn fan_in_flags() {
        let (kind, s) = parse(&[
            "fan-in",
            "-p",
            "20",
            "-q",
            "0,1",
            "--size",
            "256",
            "--rate",
            "100",
            "-n",
            "50",
            "--mqtt",
            "5",
            "--persistent",
            "--pub-addr",
            "127.0.0.1:1883",
            "--sub-addr",
            "127.0.0.1:1884,127.0.0.1:1885",
        ])
        .unwrap();
        assert_eq!(kind, Kind::FanIn);
        assert_eq!((s.publishers, s.subscribers), (20, 1));
        assert_eq!(s.qos, vec![QoS::AtMostOnce, QoS::AtLeastOnce]);
        assert_eq!(s.rate, Some(100.0));
        assert_eq!(s.stop, Stop::Count(50));
        assert_eq!(s.version, ProtocolVersion::V5);
        assert!(!s.clean);
        assert_eq!(s.session_expiry, 300);
        assert_eq!(s.pub_addrs.len(), 1);
        assert_eq!(s.sub_addrs[1].port(), 1885);
    }

    #[test]
    fn defaults_per_scenario() {
        let (_, s) = parse(&["fan-out"]).unwrap();
        assert_eq!((s.publishers, s.subscribers), (1, 10));
        assert_eq!(s.stop, Stop::Duration(Duration::from_secs(10)));
        assert_eq!(s.rate, None, "0 means unlimited");
        assert!(s.clean);
        let (_, s) = parse(&["p2p", "--pairs", "5", "-d", "2s"]).unwrap();
        assert_eq!((s.publishers, s.subscribers), (5, 5));
        assert_eq!(s.stop, Stop::Duration(Duration::from_secs(2)));
        let (_, s) =
            parse(&["conn", "-c", "10000", "--conn-rate", "500", "--hold", "30s"]).unwrap();
        assert_eq!(s.subscribers, 10_000);
        assert_eq!(s.conn_rate, Some(500.0));
        assert_eq!(s.hold, Duration::from_secs(30));
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let err = parse(&["pub", "-q", "3"]).unwrap_err();
        assert!(err.contains("--qos 3"), "{err}");
        let err = parse(&["pub", "--size", "8"]).unwrap_err();
        assert!(err.contains("--size 8"), "{err}");
        let err = parse(&["pub", "--rate=-1"]).unwrap_err();
        assert!(err.contains("--rate"), "{err}");
        let err = parse(&["pub", "--client", "rumqttc", "--mqtt", "5"]).unwrap_err();
        assert!(err.contains("rumqttc"), "{err}");
        assert!(parse(&["pub", "--mqtt", "4.5"]).is_err());
        assert!(parse(&["pub", "-d", "soon"]).is_err());
    }
}
