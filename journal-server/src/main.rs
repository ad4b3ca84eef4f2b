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
    /// This node's id (overrides `node_id`), or `pod-ordinal`: the StatefulSet ordinal
    /// of POD_NAME plus one.
    #[arg(long, env = "JOURNAL_SERVER_NODE_ID")]
    node_id: Option<common_metrics::NodeIdSpec>,
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
    /// The gRPC address published to the placement center for others to dial
    /// (overrides `placement.advertise`), e.g. `journal-server-0.journal-server-headless:2228`.
    #[arg(long, env = "JOURNAL_SERVER_ADVERTISE")]
    advertise: Option<String>,
    /// Log format: auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long)]
    log_format: Option<common_metrics::LogFormat>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        // Validated below, once flags and environment are applied.
        Some(path) => JournalConfig::parse_file(path)?,
        None => JournalConfig::default(),
    };
    let identity = common_metrics::Identity::from_env("journal-server", env!("CARGO_PKG_VERSION"));
    if let Some(id) = cli.node_id {
        config.node_id = id.resolve(&identity).map_err(anyhow::Error::msg)?;
    }
    if let Some(advertise) = cli.advertise {
        config.placement.advertise = Some(advertise);
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
        .with_context(|| match &cli.config {
            Some(path) => format!(
                "invalid configuration ({} with flags and environment)",
                path.display()
            ),
            None => "invalid configuration".to_owned(),
        })?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(config, identity))
}

async fn run(config: JournalConfig, identity: common_metrics::Identity) -> anyhow::Result<()> {
    let telemetry =
        common_metrics::init(&identity, &config.telemetry).context("initialising telemetry")?;
    let server = Server::bind(config, &identity).await?;
    let result = server.run(common_metrics::shutdown_signal()).await;
    telemetry.shutdown();
    Ok(result?)
}
