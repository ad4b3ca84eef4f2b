//! The Rust client of the placement center, for brokers and journal nodes.
//!
//! It knows every member's address, prefers the leader (members forward writes anyway, so
//! any member works), and retries retryable failures (UNAVAILABLE, a member going away)
//! on the next member with exponential backoff until the call's deadline. Watches resume
//! from the revision after the last event they delivered; leases are kept alive by a
//! background task. No RocksDB or openraft here: depending on it is cheap.
//!
//! ```no_run
//! # async fn demo() -> placement_client::Result<()> {
//! use placement_client::{ClientConfig, PlacementClient};
//! let client = PlacementClient::new(ClientConfig::new(["127.0.0.1:1228", "127.0.0.1:1229", "127.0.0.1:1230"]))?;
//! client.put("nodes/broker-1", "10.0.0.1:1883").await?;
//! let kv = client.get("nodes/broker-1").await?;
//! # Ok(()) }
//! ```
//!
//! Cluster membership: nodes register under `/cluster/nodes/{kind}/{id}` with
//! [`PlacementClient::register`] (a lease kept alive, an epoch for fencing) and follow each
//! other with [`PlacementClient::watch_members`].
//!
//! Writes are retried when a member fails mid-call, so a write may apply twice if the
//! member died after proposing it (at-least-once); use `txn` with a revision compare where
//! that matters.

mod client;
mod error;
mod lease;
mod membership;
mod watch;

pub use client::{ClientConfig, PlacementClient};
pub use error::{Error, Result};
pub use lease::LeaseKeeper;
pub use membership::{
    kind_prefix, node_key, Member, Members, NodeInfo, Registration, NODES_PREFIX,
};
pub use robustmq_proto::placement as pb;
pub use watch::WatchStream;
