//! The `mqtt-broker` binary: flags and config file in, `Server::run` until SIGTERM or
//! Ctrl-C. `mqtt-broker passwd` manages the password file.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mqtt_broker::config::{ListenerConfig, ListenerProtocol};
use mqtt_broker::{BrokerConfig, Server};

/// MQTT 3.1 / 3.1.1 / 5.0 broker. With no arguments: standalone, MQTT on
/// 127.0.0.1:1883, metrics on 127.0.0.1:9091.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see mqtt-broker/config/mqtt-broker.example.toml).
    #[arg(long, env = "MQTT_BROKER_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the MQTT TCP listener (replaces the config's TCP listener).
    #[arg(long, env = "MQTT_BROKER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the /metrics, /healthz and /readyz HTTP endpoint.
    #[arg(long, env = "MQTT_BROKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Broker node id in the cluster (unique among brokers).
    #[arg(long, env = "MQTT_BROKER_NODE_ID")]
    node_id: Option<u64>,
    /// Address of the broker-to-broker gRPC service (cluster mode).
    #[arg(long, env = "MQTT_BROKER_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// Placement-center members, comma separated (`host:port,...`); turns cluster mode on.
    #[arg(long, env = "MQTT_BROKER_PLACEMENT_ENDPOINTS", value_delimiter = ',')]
    placement_endpoints: Option<Vec<String>>,
    /// Write persistent sessions to the journal (`cluster.durability`, default true).
    #[arg(long, env = "MQTT_BROKER_DURABILITY")]
    durability: Option<bool>,
    /// Log format: auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long)]
    log_format: Option<common_metrics::LogFormat>,
    /// Fraction (0.0 to 1.0) of messages without a `traceparent` to trace
    /// (`message_tracing.sample_ratio`).
    #[arg(long, env = "MQTT_BROKER_MESSAGE_SAMPLE_RATIO", value_name = "RATIO")]
    message_sample_ratio: Option<f64>,
    /// Give each MQTT 5 subscriber the context of its delivery span as `traceparent`
    /// (`message_tracing.reparent`).
    #[arg(long, env = "MQTT_BROKER_REPARENT")]
    reparent: Option<bool>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds or replaces a user in a password file; reads the password from stdin.
    Passwd {
        /// The password file (created if missing).
        #[arg(long)]
        file: PathBuf,
        /// The username.
        user: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Passwd { file, user }) = &cli.command {
        return passwd(file, user);
    }
    let mut config = match &cli.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(addr) = cli.listen {
        match config
            .listeners
            .iter_mut()
            .find(|l| l.protocol == ListenerProtocol::Tcp)
        {
            Some(tcp) => tcp.bind = addr,
            None => config.listeners.push(ListenerConfig::tcp(addr)),
        }
    }
    if let Some(addr) = cli.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Some(id) = cli.node_id {
        config.cluster.node_id = id;
    }
    if let Some(addr) = cli.grpc_listen {
        config.cluster.grpc_listen = addr;
    }
    if let Some(endpoints) = cli.placement_endpoints {
        config.cluster.placement_endpoints = endpoints;
    }
    if let Some(durability) = cli.durability {
        config.cluster.durability = durability;
    }
    if let Some(format) = cli.log_format {
        config.telemetry.log_format = format;
    }
    if let Some(ratio) = cli.message_sample_ratio {
        config.message_tracing.sample_ratio = ratio;
    }
    if let Some(reparent) = cli.reparent {
        config.message_tracing.reparent = reparent;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(config))
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let identity = common_metrics::Identity::from_env("mqtt-broker", env!("CARGO_PKG_VERSION"));
    let telemetry =
        common_metrics::init(&identity, &config.telemetry).context("initialising telemetry")?;
    let server = Server::bind(config, &identity).await?;
    server.run(common_metrics::shutdown_signal()).await;
    telemetry.shutdown();
    Ok(())
}

fn passwd(file: &std::path::Path, user: &str) -> anyhow::Result<()> {
    eprintln!("password for {user} (read from stdin):");
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    mqtt_broker::auth::set_password(file, user, password.as_bytes()).map_err(anyhow::Error::msg)?;
    eprintln!("{user} written to {}", file.display());
    Ok(())
}
