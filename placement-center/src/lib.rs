//! The placement center: the cluster's metadata service, a small etcd (KV with revisions,
//! transactions, leases, watch) replicated by openraft over RocksDB and served with tonic.
//!
//! * [`config`]: the TOML configuration and its defaults.
//! * [`kv`]: the replicated key-value model (commands, apply, reads, watch, leases).
//! * [`store`]: the RocksDB log store and state machine openraft runs on.
//! * [`raft`]: openraft types, the peer network and the peer-only gRPC service.
//! * [`service`]: the client-facing gRPC services (Kv, Lease, Watch, Cluster).
//! * [`node`]: a running member: startup, bootstrap, background loops, shutdown.

pub mod config;
pub mod error;
pub mod kv;
pub mod node;
pub mod raft;
pub mod service;
pub mod store;

pub use config::PlacementConfig;
pub use error::{Error, Result};
pub use node::Node;
