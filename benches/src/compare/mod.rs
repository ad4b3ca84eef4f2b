//! `compare`: the same scenarios against our broker, rumqttd and mosquitto, each on a
//! fresh process with equivalent settings, one after another in one run; then one
//! table with the ratios (ours/rumqttd, ours/mosquitto), the goals, and the
//! resident memory per idle connection.

pub mod brokers;
pub mod memory;
pub mod rumqttd;
pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::{ClientImpl, RunArgs};
use crate::report::Report;
use crate::runner::{self, RunOptions};
use crate::scenario::{parse_duration, Kind, Scenario};
use brokers::{BrokerKind, BrokerSettings};
use memory::MemoryReport;

/// The standard comparison scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize)]
pub enum Preset {
    /// QoS 0, --publishers publishers as fast as possible → 1 subscriber.
    FanInQos0,
    /// QoS 0, 1 publisher as fast as possible → --subscribers subscribers.
    FanOutQos0,
    /// QoS 1, --pairs pairs at --p2p-rate messages/s each: the latency test.
    P2pQos1,
}

impl Preset {
    /// Name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FanInQos0 => "fan-in qos0",
            Self::FanOutQos0 => "fan-out qos0",
            Self::P2pQos1 => "p2p qos1",
        }
    }
}

/// Flags of `mqtt-bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Brokers to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ours,rumqttd,mosquitto"
    )]
    pub brokers: Vec<BrokerKind>,
    /// Scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fan-in-qos0,fan-out-qos0,p2p-qos1"
    )]
    pub scenarios: Vec<Preset>,
    /// Run time of each scenario on each broker.
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Rounds; brokers are rotated between rounds and the median is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Publishers of fan-in.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// Subscribers of fan-out.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Pairs of p2p.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Messages per second per p2p publisher.
    #[arg(long, default_value_t = 1000.0)]
    pub p2p_rate: f64,
    /// Payload size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// MQTT version.
    #[arg(long = "mqtt", value_enum, default_value = "3.1.1")]
    pub version: crate::cli::MqttVersion,
    /// In-flight window: brokers' per-client limit and our publishers' window.
    #[arg(long, default_value_t = 100)]
    pub inflight: usize,
    /// Messages each broker may queue per client.
    #[arg(long, default_value_t = 100_000)]
    pub max_queued: usize,
    /// Our broker's runtime worker threads (`runtime.worker_threads`; 0: one per CPU,
    /// its default). rumqttd and mosquitto have no such setting: rumqttd serves a
    /// listener on one thread and routes on another, mosquitto runs on one.
    #[arg(long, default_value_t = 0)]
    pub worker_threads: usize,
    /// Idle connections for the memory test (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Our broker's binary (default: mqtt-broker next to this executable, i.e. the one
    /// `cargo build --release -p mqtt-broker -p mqtt-bench` built).
    #[arg(long)]
    pub broker_bin: Option<PathBuf>,
    /// Client implementation.
    #[arg(long, value_enum, default_value = "native")]
    pub client: ClientImpl,
    /// Write every report and the summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the summary table (Markdown) here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// Everything `compare` measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct Comparison {
    /// Reports by scenario and broker, one per round.
    pub runs: BTreeMap<Preset, BTreeMap<BrokerKind, Vec<Report>>>,
    pub memory: BTreeMap<BrokerKind, MemoryReport>,
    /// Brokers skipped, with the reason.
    pub skipped: BTreeMap<BrokerKind, String>,
    pub load_average_start: Option<[f64; 3]>,
    pub load_average_end: Option<[f64; 3]>,
    pub machine: String,
}

impl CompareArgs {
    /// The scenario a preset stands for, with these flags.
    pub fn scenario(&self, preset: Preset, addr: std::net::SocketAddr) -> Scenario {
        let mut a = RunArgs::parse_defaults();
        a.addr = vec![addr.to_string()];
        a.size = self.size;
        a.duration = self.duration;
        a.version = self.version;
        a.inflight = self.inflight;
        a.client = self.client;
        let kind = match preset {
            Preset::FanInQos0 => {
                a.publishers = Some(self.publishers);
                a.subscribers = Some(1);
                Kind::FanIn
            }
            Preset::FanOutQos0 => {
                a.publishers = Some(1);
                a.subscribers = Some(self.subscribers);
                Kind::FanOut
            }
            Preset::P2pQos1 => {
                a.pairs = Some(self.pairs);
                a.qos = vec![1];
                a.rate = self.p2p_rate;
                Kind::P2p
            }
        };
        a.scenario(kind).expect("compare builds valid scenarios")
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// Runs the comparison and prints the table. Returns it for `--json`.
pub async fn run(args: &CompareArgs) -> anyhow::Result<Comparison> {
    let ours_bin = match &args.broker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("mqtt-broker"),
    };
    let settings = BrokerSettings {
        inflight: args.inflight,
        max_queued: args.max_queued,
        worker_threads: args.worker_threads,
        ours_bin,
        mosquitto_bin: brokers::find_mosquitto(),
    };
    let mut cmp = Comparison {
        load_average_start: crate::report::load_average(),
        machine: machine(),
        ..Default::default()
    };
    let mut brokers_to_run = Vec::new();
    for &b in &args.brokers {
        let skip = match b {
            BrokerKind::Ours if !settings.ours_bin.is_file() => Some(format!(
                "{} not found: build it with `cargo build --release -p mqtt-broker` or pass --broker-bin",
                settings.ours_bin.display()
            )),
            BrokerKind::Mosquitto if settings.mosquitto_bin.is_none() => {
                Some("mosquitto is not installed (apt-get install mosquitto)".into())
            }
            _ => None,
        };
        match skip {
            Some(reason) => {
                println!("skipping {}: {reason}", b.as_str());
                cmp.skipped.insert(b, reason);
            }
            None => brokers_to_run.push(b),
        }
    }
    if args.idle_connections > 0 {
        memory::ensure_fd_limit(args.idle_connections)?;
    }
    for round in 0..args.rounds.max(1) {
        let mut order = brokers_to_run.clone();
        let shift = round % order.len().max(1);
        order.rotate_left(shift);
        for &preset in &args.scenarios {
            for &b in &order {
                let broker = brokers::start(b, &settings)?;
                let addr = match args.version {
                    crate::cli::MqttVersion::V5 => broker.v5,
                    crate::cli::MqttVersion::V311 => broker.v4,
                };
                let scenario = args.scenario(preset, addr);
                let opts = RunOptions {
                    client: args.client,
                    tls: None,
                    progress: !args.no_progress,
                    target: b.as_str().into(),
                };
                println!("round {} · {} · {}", round + 1, preset.as_str(), b.as_str());
                let cpu_before = broker.cpu_secs().ok();
                let report = match runner::run(&scenario, &opts).await {
                    Ok(mut r) => {
                        r.broker_cpu_secs = cpu_before
                            .zip(broker.cpu_secs().ok())
                            .map(|(before, after)| after - before);
                        r
                    }
                    Err(e) => {
                        println!("  failed: {e:#}\n{}", broker.log_tail());
                        let mut r = Report {
                            scenario: scenario.kind.as_str().into(),
                            target: b.as_str().into(),
                            ..Default::default()
                        };
                        r.failures.push(format!("{e:#}"));
                        r
                    }
                };
                println!(
                    "  received {:.0} msg/s, p50 {} p99 {}{}",
                    report.receive_rate,
                    crate::report::ms(report.latency.p50_us),
                    crate::report::ms(report.latency.p99_us),
                    if report.failed() {
                        format!(", FAILED: {}", report.failures.join("; "))
                    } else {
                        String::new()
                    }
                );
                cmp.runs
                    .entry(preset)
                    .or_default()
                    .entry(b)
                    .or_default()
                    .push(report);
                drop(broker);
            }
        }
    }
    if args.idle_connections > 0 {
        for &b in &brokers_to_run {
            let broker = brokers::start(b, &settings)?;
            println!(
                "idle connections · {} · {}",
                args.idle_connections,
                b.as_str()
            );
            match memory::idle_connections(&broker, args.idle_connections).await {
                Ok(m) => {
                    println!("  {:.1} KiB per connection", m.kib_per_connection);
                    cmp.memory.insert(b, m);
                }
                Err(e) => println!("  failed: {e:#}"),
            }
        }
    }
    cmp.load_average_end = crate::report::load_average();
    Ok(cmp)
}
