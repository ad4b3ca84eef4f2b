//! mqtt-bench: an MQTT load generator and broker comparison.
//!
//! Module map: `cli` (flags) becomes a `scenario` (plain data and the plan of
//! clients); `runner` connects the `client`s (a thin native client on mqtt-codec, or
//! rumqttc), releases the publishers, drains and accounts: `payload` (sequence number,
//! publisher id, timestamp), `accounting` (loss, duplicates, reordering), `stats`
//! (HDR latency, per-second buckets). `report` prints the table and JSON, `plot` the
//! SVG, `progress` the live line. `compare` runs scenarios against our broker,
//! rumqttd and mosquitto as fresh processes and prints the ratios.

pub mod accounting;
pub mod cli;
pub mod client;
pub mod compare;
pub mod payload;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;

pub use report::Report;
pub use runner::{run, RunOptions};
pub use scenario::{Kind, Scenario};
