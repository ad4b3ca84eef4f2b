//! The MQTT broker: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS and WebSocket.
//!
//! Module map, in the order a PUBLISH travels: `listener` accepts and runs the
//! transport handshake (`transport`), `connection` turns wire packets into domain
//! types (`message`) and owns a client's protocol state, `broker` is the shared state
//! (routing via `router`, `session`s, `retained` messages, `auth`/`acl`), and `server`
//! starts and stops it all. `metrics` and `sys` report on it. `cluster` joins brokers
//! through the placement center and forwards messages between them.

pub mod acl;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod fanout;
pub mod listener;
pub mod message;
pub mod message_trace;
pub mod metrics;
pub mod retained;
pub mod router;
pub mod server;
pub mod session;
pub mod sys;
pub mod transport;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::{BrokerError, ConfigError};
pub use server::Server;
