//! The client side of the peer network: openraft's RPCs to other members over the
//! peer-only gRPC service, plus a test switch that cuts this node off (a partition).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::registry::{Registry, Unit};
use robustmq_proto::placement::raft_peer_client::RaftPeerClient;
use robustmq_proto::placement::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use common_metrics::{latency_family, LatencyHistogram};

use crate::raft::{NodeId, TypeConfig};

/// Largest peer message (snapshot chunks and entry batches, JSON-encoded).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// Cuts this node off from its peers, both ways, while on (tests simulate partitions).
#[derive(Clone, Debug, Default)]
pub struct NetworkSwitch(Arc<AtomicBool>);

impl NetworkSwitch {
    pub fn set_isolated(&self, isolated: bool) {
        self.0.store(isolated, Ordering::SeqCst);
    }

    pub fn is_isolated(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A Raft RPC, the `rpc` label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum RaftRpc {
    append_entries,
    vote,
    install_snapshot,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: RaftRpc,
}

/// Latency of outgoing Raft RPCs, by RPC.
#[derive(Clone, Debug)]
pub struct ReplicationMetrics {
    append_entries: LatencyHistogram,
    vote: LatencyHistogram,
    install_snapshot: LatencyHistogram,
}

impl ReplicationMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let family = latency_family::<RpcLabels>();
        registry.register_with_unit(
            "raft_replication_rpc_duration",
            "Latency of Raft RPCs sent to peers (append entries replicates the log), by RPC",
            Unit::Seconds,
            family.clone(),
        );
        let get = |rpc| family.get_or_create(&RpcLabels { rpc }).clone();
        ReplicationMetrics {
            append_entries: get(RaftRpc::append_entries),
            vote: get(RaftRpc::vote),
            install_snapshot: get(RaftRpc::install_snapshot),
        }
    }
}

/// Makes one [`PeerClient`] per target for openraft.
#[derive(Clone)]
pub struct PeerNetwork {
    pub switch: NetworkSwitch,
    pub metrics: ReplicationMetrics,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            client: peer_client(&node.addr).ok(),
            switch: self.switch.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// A lazily connected client of a peer's `RaftPeer` service.
pub fn peer_client(addr: &str) -> Result<RaftPeerClient<Channel>, tonic::transport::Error> {
    Ok(peer_limits(RaftPeerClient::new(peer_channel(addr)?)))
}

/// A lazily connected channel to a peer's gRPC address.
pub fn peer_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Raises a peer client's message limits to [`MAX_PEER_MESSAGE`].
pub fn peer_limits<T>(client: RaftPeerClient<T>) -> RaftPeerClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    client
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

/// openraft's connection to one peer.
pub struct PeerClient {
    target: NodeId,
    node: BasicNode,
    /// `None` when the address does not parse; every RPC then reports it unreachable.
    client: Option<RaftPeerClient<Channel>>,
    switch: NetworkSwitch,
    metrics: ReplicationMetrics,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    /// Sends `req` with `method` and decodes the peer's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E, F, Fut>(
        &mut self,
        req: &Req,
        timeout: Duration,
        method: F,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftPeerClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        if self.switch.is_isolated() {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other("isolated by the network switch"),
            )));
        }
        let Some(client) = self.client.clone() else {
            let e = std::io::Error::other(format!("bad peer address {}", self.node.addr));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(timeout);
        let reply = method(client, request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => RPCError::Unreachable(Unreachable::new(&status)),
                _ => RPCError::Network(NetworkError::new(&status)),
            })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let start = Instant::now();
        let res = self
            .call(&rpc, option.hard_ttl(), |mut c, r| async move {
                c.append_entries(r).await
            })
            .await;
        self.metrics.append_entries.observe_duration(start);
        res
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let start = Instant::now();
        let res = self
            .call(&rpc, option.hard_ttl(), |mut c, r| async move {
                c.install_snapshot(r).await
            })
            .await;
        self.metrics.install_snapshot.observe_duration(start);
        res
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let start = Instant::now();
        let res = self
            .call(&rpc, option.hard_ttl(), |mut c, r| async move {
                c.vote(r).await
            })
            .await;
        self.metrics.vote.observe_duration(start);
        res
    }
}
