//! The `placement-center` binary: flags and config file in, a running member until
//! SIGTERM or Ctrl-C, then a graceful shutdown (exit 0).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use placement_center::{Node, PlacementConfig};

/// The placement center: the cluster's Raft-replicated metadata service. With no
/// arguments: a one-member cluster, gRPC on 127.0.0.1:1228, metrics on 127.0.0.1:9081.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see placement-center/config/placement-center.example.toml).
    #[arg(long, env = "PLACEMENT_CENTER_CONFIG")]
    config: Option<PathBuf>,
    /// This member's id, or `pod-ordinal`: the StatefulSet ordinal of POD_NAME plus one.
    #[arg(long, env = "PLACEMENT_CENTER_NODE_ID")]
    node_id: Option<common_metrics::NodeIdSpec>,
    /// gRPC address (clients and peers).
    #[arg(long, env = "PLACEMENT_CENTER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the /metrics, /healthz and /readyz HTTP endpoint.
    #[arg(long, env = "PLACEMENT_CENTER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Data directory (RocksDB and snapshots).
    #[arg(long, env = "PLACEMENT_CENTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bootstrap members: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    #[arg(long, env = "PLACEMENT_CENTER_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Log format: auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long)]
    log_format: Option<common_metrics::LogFormat>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => PlacementConfig::from_file(path)?,
        None => PlacementConfig::default(),
    };
    let identity =
        common_metrics::Identity::from_env("placement-center", env!("CARGO_PKG_VERSION"));
    if let Some(id) = cli.node_id {
        config.node_id = id.resolve(&identity).map_err(anyhow::Error::msg)?;
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
    if let Some(members) = cli.initial_cluster {
        config.initial_cluster = members;
    }
    if let Some(format) = cli.log_format {
        config.telemetry.log_format = format;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(config, identity))
}

async fn run(config: PlacementConfig, identity: common_metrics::Identity) -> anyhow::Result<()> {
    let telemetry =
        common_metrics::init(&identity, &config.telemetry).context("initialising telemetry")?;
    let node = Node::start(config, &identity).await?;
    common_metrics::shutdown_signal().await;
    node.shutdown().await;
    telemetry.shutdown();
    Ok(())
}
