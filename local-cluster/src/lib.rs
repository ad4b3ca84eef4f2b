//! The local three-node cluster on loopback: 3 × placement-center, 3 × journal-server and
//! 3 × mqtt-broker as real processes, each with its data directory and log under one
//! root. The `local-cluster` binary is the product's "run it" command; end-to-end tests
//! use [`LocalCluster`] with [`ClusterPlan::ephemeral`] ports.
//!
//! ```no_run
//! # async fn demo() -> local_cluster::Result<()> {
//! use local_cluster::{ClusterPlan, LocalCluster, Service};
//! let dir = std::path::Path::new("/tmp/cluster");
//! let mut cluster = LocalCluster::start(ClusterPlan::ephemeral(dir)?).await?;
//! let leader = cluster.placement_client().status().await?.leader_id;
//! cluster.kill(Service::PlacementCenter, leader).await?;   // failover
//! cluster.restart(Service::PlacementCenter, leader).await?;
//! cluster.stop().await?;                                   // brokers → journal → placement
//! # Ok(()) }
//! ```

pub mod alertmanager;
pub mod binaries;
mod cluster;
mod error;
pub mod journal_config;
pub mod launcher;
pub mod metrics_text;
mod plan;
mod ports;
pub mod probe;
mod process;
pub mod prometheus;
pub mod root;
mod spec;
pub mod status;
pub mod table;
pub mod traces;

pub use cluster::{Exited, LocalCluster, LOG_TAIL_LINES};
pub use error::{Error, Result};
pub use launcher::{run, LaunchOptions};
pub use plan::ClusterPlan;
pub use ports::{
    NodePorts, PortRow, Service, LOCAL_ALERTMANAGER_PORT, LOCAL_ALERT_WEBHOOK_PORT, LOCAL_PORTS,
    LOCAL_PROMETHEUS_PORT,
};
pub use process::{log_tail, ChildProcess, StopOutcome};
pub use spec::{grpc_endpoints, initial_cluster, LaunchSpec, CLUSTER_NAME};
pub use status::ClusterStatus;
