//! In-process multi-node tests: three `Node`s on loopback in one test process.

mod bad_input;
mod failover;
mod harness;
mod kv;
mod membership;
mod membership_nodes;
mod watch_lease;
