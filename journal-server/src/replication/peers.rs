//! gRPC clients to the other journal nodes, one lazily connected channel per node.
//!
//! Every call goes through common-metrics' client layer, so peer calls carry the
//! caller's `traceparent` and show up in `robustmq_grpc_client_*`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use common_metrics::grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcClientService};
use robustmq_proto::journal::journal_peer_client::JournalPeerClient;
use tonic::transport::{Channel, Endpoint};

use crate::config::NodeId;

/// A peer client (cheap to clone: clones share the HTTP/2 connection).
pub type PeerClient = JournalPeerClient<GrpcClientService<Channel>>;

/// The other journal nodes and their clients.
#[derive(Debug)]
pub struct Peers {
    addrs: BTreeMap<NodeId, String>,
    /// Created on first use; a channel reconnects by itself after failures.
    clients: Mutex<HashMap<NodeId, PeerClient>>,
    layer: GrpcClientLayer,
    connect_timeout: Duration,
}

impl Peers {
    /// Peers at `addrs` (`host:port`), recording client metrics into `metrics`.
    pub fn new(
        addrs: BTreeMap<NodeId, String>,
        metrics: GrpcClientMetrics,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            addrs,
            clients: Mutex::new(HashMap::new()),
            layer: GrpcClientLayer::new(metrics),
            connect_timeout,
        }
    }

    /// The address of node `id`, as configured.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.addrs.get(&id).map(String::as_str)
    }

    /// A client for node `id`, `None` for an unknown node or a bad address.
    pub fn client(&self, id: NodeId) -> Option<PeerClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&id) {
            return Some(c.clone());
        }
        let addr = self.addrs.get(&id)?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = tower::ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(endpoint.connect_lazy());
        let client = JournalPeerClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(id, client.clone());
        Some(client)
    }
}
