//! rumqttd as a comparison broker: the library started in this binary's hidden
//! `serve-rumqttd` subcommand, so `compare` runs it as a fresh process like the others.

use std::collections::HashMap;
use std::net::SocketAddr;

use clap::Args;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Flags of `mqtt-bench serve-rumqttd`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// MQTT 3.1.1 listener.
    #[arg(long)]
    pub v4: SocketAddr,
    /// MQTT 5 listener.
    #[arg(long)]
    pub v5: SocketAddr,
    /// In-flight QoS 1/2 deliveries per connection.
    #[arg(long, default_value_t = 100)]
    pub inflight: usize,
    /// Connections accepted.
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,
}

/// The rumqttd configuration equivalent to the others': no persistence (rumqttd has
/// none), no connection throttling, generous router buffers, no metrics endpoints.
pub fn config(args: &ServeArgs) -> Config {
    let connections = || ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: args.inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        // rumqttd's sample config waits 1 ms between accepts; the others do not.
        next_connection_delay_ms: 0,
        connections: connections(),
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: args.max_connections,
            max_outgoing_packet_count: 10_000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server("v4-1", args.v4))])),
        v5: Some(HashMap::from([("1".to_owned(), server("v5-1", args.v5))])),
        ..Default::default()
    }
}

/// Runs rumqttd until the process is killed.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let mut broker = Broker::new(config(args));
    broker
        .start()
        .map_err(|e| anyhow::anyhow!("rumqttd: {e}"))?;
    // `start` returns only when its server threads end.
    Ok(())
}
