//! The client-facing gRPC services (typed protobuf API) and their conversions.

pub mod cluster;
pub mod convert;
pub mod kv;
pub mod lease;
pub mod watch;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use watch::WatchService;
