//! The replicated key-value model (etcd's): commands, their deterministic application,
//! local reads, watch events and lease deadlines.

pub mod apply;
pub mod command;
pub mod lease;
pub mod read;
pub mod record;
pub mod watch;

pub use command::{Command, CommandResponse, KeyValue};
pub use lease::LeaseClock;
pub use read::KvReader;
pub use watch::WatchHub;
