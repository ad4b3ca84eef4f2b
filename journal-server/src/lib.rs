//! The journal server: a durable, replicated log of records split into shards.
//!
//! Module map, bottom up: `segment` (record batch format, segment files, sparse
//! indexes), `log` (a shard replica's segments: append, read, roll, retention, recovery),
//! `epochs` (leader epoch cache), `group_commit` (the per-shard writer task that shares
//! one fsync between concurrent appends), `replication` (leader/follower roles, ISR, high
//! watermark, elections), `shard` (one shard replica: all of the above), `placement`
//! (which nodes hold which shard), `node` (every shard on this node), `service` (tonic
//! client and peer APIs), `server` (startup and shutdown), `membership` (registration in
//! the placement center), and `metrics`. The leader-following client is the `journal-client` crate
//! (re-exported as `client`).

pub mod clock;
pub mod config;
pub mod epochs;
pub mod error;
mod fsutil;
pub mod group_commit;
pub mod log;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod placement;
pub mod record;
pub mod replication;
pub mod segment;
pub mod server;
pub mod service;
pub mod shard;

pub use config::JournalConfig;
pub use error::{JournalError, StorageError};
pub use journal_client as client;
pub use record::{NewRecord, Record};
pub use server::Server;
