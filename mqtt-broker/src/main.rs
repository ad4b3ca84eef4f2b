//! The `mqtt-broker` binary: flags and config file in, `Server::run` until SIGTERM or
//! Ctrl-C. `mqtt-broker passwd` manages the password file.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mqtt_broker::config::{ListenerConfig, ListenerProtocol};
use mqtt_broker::{BrokerConfig, Server};

/// mimalloc rather than glibc's malloc: a message is allocated on the thread that read
/// its PUBLISH and often freed on another (the subscriber's, or the forward thread's),
/// and glibc frees into another thread's arena under that arena's lock (`_int_free`
/// and `unlink_chunk` were 7 % of the forward thread's CPU in a cross-node flood).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Broker node id in the cluster (unique among brokers), or `pod-ordinal`: the
    /// StatefulSet ordinal of POD_NAME plus one.
    #[arg(long, env = "MQTT_BROKER_NODE_ID")]
    node_id: Option<common_metrics::NodeIdSpec>,
    /// Address of the broker-to-broker gRPC service (cluster mode).
    #[arg(long, env = "MQTT_BROKER_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// The broker-to-broker gRPC address other brokers dial (`cluster.advertise_grpc`),
    /// e.g. `mqtt-broker-0.mqtt-broker-headless:3228`.
    #[arg(long, env = "MQTT_BROKER_ADVERTISE_GRPC")]
    advertise_grpc: Option<String>,
    /// The MQTT address published for clients (`cluster.advertise_mqtt`).
    #[arg(long, env = "MQTT_BROKER_ADVERTISE_MQTT")]
    advertise_mqtt: Option<String>,
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
    /// Runtime worker threads, 0 for one per CPU (`runtime.worker_threads`).
    #[arg(long, env = "MQTT_BROKER_WORKER_THREADS", value_name = "N")]
    worker_threads: Option<usize>,
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
    /// Adds or replaces a user of the whole cluster in the placement center (password
    /// from stdin), or removes one with --delete.
    ClusterUser {
        /// Placement-center members, comma separated (`host:port,...`).
        #[arg(
            long,
            env = "MQTT_BROKER_PLACEMENT_ENDPOINTS",
            value_delimiter = ',',
            required = true
        )]
        placement_endpoints: Vec<String>,
        /// Remove the user instead.
        #[arg(long)]
        delete: bool,
        /// The username.
        user: String,
    },
    /// Sets the ACL of the whole cluster from a file (checked first; it replaces every
    /// broker's ACL file while set), or removes it with --clear.
    ClusterAcl {
        /// Placement-center members, comma separated (`host:port,...`).
        #[arg(
            long,
            env = "MQTT_BROKER_PLACEMENT_ENDPOINTS",
            value_delimiter = ',',
            required = true
        )]
        placement_endpoints: Vec<String>,
        /// The ACL file (format: mqtt-broker/config/acl.example.toml).
        #[arg(required_unless_present = "clear")]
        file: Option<PathBuf>,
        /// Remove the cluster ACL: each broker's own ACL file applies again.
        #[arg(long, conflicts_with = "file")]
        clear: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Passwd { file, user }) => return passwd(file, user),
        Some(command) => return cluster_admin(command),
        None => {}
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
    let identity = common_metrics::Identity::from_env("mqtt-broker", env!("CARGO_PKG_VERSION"));
    if let Some(id) = cli.node_id {
        config.cluster.node_id = id.resolve(&identity).map_err(anyhow::Error::msg)?;
    }
    if let Some(addr) = cli.advertise_grpc {
        config.cluster.advertise_grpc = Some(addr);
    }
    if let Some(addr) = cli.advertise_mqtt {
        config.cluster.advertise_mqtt = Some(addr);
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
    if let Some(n) = cli.worker_threads {
        config.runtime.worker_threads = n;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.runtime.worker_threads > 0 {
        runtime.worker_threads(config.runtime.worker_threads);
    }
    runtime
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(config, identity))
}

async fn run(config: BrokerConfig, identity: common_metrics::Identity) -> anyhow::Result<()> {
    let telemetry =
        common_metrics::init(&identity, &config.telemetry).context("initialising telemetry")?;
    let server = Server::bind(config, &identity).await?;
    server.run(common_metrics::shutdown_signal()).await;
    telemetry.shutdown();
    Ok(())
}

fn read_password(user: &str) -> anyhow::Result<String> {
    eprintln!("password for {user} (read from stdin):");
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(password.to_owned())
}

fn passwd(file: &std::path::Path, user: &str) -> anyhow::Result<()> {
    let password = read_password(user)?;
    mqtt_broker::auth::set_password(file, user, password.as_bytes()).map_err(anyhow::Error::msg)?;
    eprintln!("{user} written to {}", file.display());
    Ok(())
}

/// `cluster-user` and `cluster-acl`: writes to the placement center.
fn cluster_admin(command: &Command) -> anyhow::Result<()> {
    use mqtt_broker::cluster::access;
    let connect = |endpoints: &[String]| {
        placement_client::PlacementClient::new(placement_client::ClientConfig::new(
            endpoints.to_vec(),
        ))
        .context("placement endpoints")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // The client's channels are made inside the runtime.
    let _runtime = runtime.enter();
    match command {
        Command::ClusterUser {
            placement_endpoints,
            delete,
            user,
        } => {
            let client = connect(placement_endpoints)?;
            if *delete {
                let deleted = runtime
                    .block_on(access::delete_user(&client, user))
                    .map_err(anyhow::Error::msg)?;
                if !deleted {
                    anyhow::bail!("no cluster user {user}");
                }
                eprintln!("cluster user {user} removed");
            } else {
                let password = read_password(user)?;
                runtime
                    .block_on(access::put_user(&client, user, password.as_bytes()))
                    .map_err(anyhow::Error::msg)?;
                eprintln!("cluster user {user} written");
            }
        }
        Command::ClusterAcl {
            placement_endpoints,
            file,
            clear,
        } => {
            let client = connect(placement_endpoints)?;
            let text = match file {
                Some(path) if !clear => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                _ => None,
            };
            runtime
                .block_on(access::put_acl(&client, text.as_deref()))
                .map_err(|e| match file {
                    Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
                    None => anyhow::anyhow!(e),
                })?;
            eprintln!(
                "{}",
                if text.is_some() {
                    "cluster ACL set"
                } else {
                    "cluster ACL removed"
                }
            );
        }
        Command::Passwd { .. } => unreachable!("handled in main"),
    }
    Ok(())
}
