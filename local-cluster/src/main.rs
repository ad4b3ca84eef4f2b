//! The `local-cluster` binary: `cargo run --release -p local-cluster` starts the local
//! three-node cluster, prints its endpoints and a live status line, and stops it on
//! Ctrl-C. Flags in, [`local_cluster::run`] does the rest.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use local_cluster::LaunchOptions;

/// Starts 3 × placement-center, 3 × journal-server and 3 × mqtt-broker on 127.0.0.1
/// (ports in local-cluster/README.md) and stops them all on Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Root of every data directory, log (`<dir>/logs/<process>.log`) and generated config.
    #[arg(long, default_value = "data/local-cluster")]
    data_dir: PathBuf,
    /// Wipe the data directory first (only one created by local-cluster).
    #[arg(long)]
    fresh: bool,
    /// Directory of the placement-center, journal-server and mqtt-broker binaries
    /// [default: the directory of this executable].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the service binaries first (only done under cargo).
    #[arg(long)]
    no_build: bool,
    /// Also start Prometheus on 127.0.0.1:9090 scraping every process and evaluating the
    /// shipped rules (deploy/prometheus/rules), if installed.
    #[arg(long)]
    prometheus: bool,
    /// Also start Alertmanager on 127.0.0.1:9094 with deploy/alertmanager/alertmanager.yml
    /// (implies --prometheus), if installed; its notifications are printed here.
    #[arg(long)]
    alertmanager: bool,
    /// Add N to every port of the table (to run a second cluster beside the first).
    #[arg(long, default_value_t = 0, value_name = "N")]
    port_offset: u16,
    /// Seconds each tier (placement, journal, brokers) may take to get ready.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    ready_timeout: u64,
    /// A config file every broker loads (see mqtt-broker/config/mqtt-broker.example.toml);
    /// the launcher's flags still set each broker's addresses and cluster settings.
    #[arg(long, value_name = "FILE")]
    broker_config: Option<PathBuf>,
    /// Collect every process's spans (OTLP on 127.0.0.1:4317) and print each message
    /// trace as an indented tree with timings. With OTEL_EXPORTER_OTLP_ENDPOINT set, the
    /// processes export there instead.
    #[arg(long)]
    traces: bool,
    /// With --traces: fraction of messages published without a `traceparent` to trace.
    #[arg(long, default_value_t = 1.0, value_name = "RATIO")]
    trace_sample_ratio: f64,
    /// Seconds between two refreshes of the status line.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    status_interval: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let options = LaunchOptions {
        data_dir: cli.data_dir,
        fresh: cli.fresh,
        bin_dir: cli.bin_dir,
        build: !cli.no_build,
        prometheus: cli.prometheus,
        alertmanager: cli.alertmanager,
        port_offset: cli.port_offset,
        ready_timeout: Duration::from_secs(cli.ready_timeout),
        status_interval: Duration::from_secs(cli.status_interval.max(1)),
        traces: cli.traces,
        trace_sample_ratio: cli.trace_sample_ratio,
        broker_config: cli
            .broker_config
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
    };
    let outcomes = local_cluster::run(options).await?;
    let mut clean = true;
    for outcome in &outcomes {
        if outcome.forced || !outcome.status.success() {
            clean = false;
            let how = if outcome.forced {
                "killed after the grace period"
            } else {
                "exited"
            };
            eprintln!("{}: {how} ({})", outcome.name, outcome.status);
        }
    }
    if !outcomes.is_empty() && clean {
        println!("all {} processes exited cleanly", outcomes.len());
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
