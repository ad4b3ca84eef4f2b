//! The `journal-server` binary: flags and config file in, `Server::run` until SIGTERM
//! or Ctrl-C. With no arguments: standalone, gRPC on 127.0.0.1:2228, metrics on
//! 127.0.0.1:9181, data in ./data/journal-server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use journal_server::{JournalConfig, Server};

/// Durable, replicated message log for the RobustMQ cluster.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see journal-server/config/journal-server.example.toml).
    #[arg(long, env = "JOURNAL_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id (overrides `node_id`).
    #[arg(long, env = "JOURNAL_SERVER_NODE_ID")]
    node_id: Option<u64>,
    /// gRPC listen address (overrides `listen`).
    #[arg(long, env = "JOURNAL_SERVER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the /metrics, /healthz and /readyz HTTP endpoint.
    #[arg(long, env = "JOURNAL_SERVER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, env = "JOURNAL_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Placement center members to register with, comma separated (overrides
    /// `placement.endpoints`).
    #[arg(
        long,
        env = "JOURNAL_SERVER_PLACEMENT_ENDPOINTS",
        value_delimiter = ','
    )]
    placement_endpoints: Option<Vec<String>>,
    /// Log format: auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long)]
    log_format: Option<common_metrics::LogFormat>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => JournalConfig::from_file(path)?,
        None => JournalConfig::default(),
    };
    if let Some(id) = cli.node_id {
        config.node_id = id;
    }
    if let Some(addr) = cli.listen {
        config.listen = addr;
    }
    if let Some(addr) = cli.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(endpoints) = cli.placement_endpoints {
        config.placement.endpoints = endpoints
            .into_iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
    }
    if let Some(format) = cli.log_format {
        config.telemetry.log_format = format;
    }
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(config))
}

async fn run(config: JournalConfig) -> anyhow::Result<()> {
    let identity = common_metrics::Identity::from_env("journal-server", env!("CARGO_PKG_VERSION"));
    let telemetry =
        common_metrics::init(&identity, &config.telemetry).context("initialising telemetry")?;
    let server = Server::bind(config, &identity).await?;
    let result = server.run(common_metrics::shutdown_signal()).await;
    telemetry.shutdown();
    Ok(result?)
}
