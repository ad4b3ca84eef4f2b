//! What every request handler shares: the Raft handle, the local reader, and the paths
//! that make writes and reads correct wherever they arrive.
//!
//! * Writes go through [`Core::write`]: on the leader into the proposal batcher, on a
//!   follower forwarded to the leader's `RaftPeer/Propose`. A "not leader" answer (nothing
//!   was proposed) is retried until a leader is found or the request times out.
//! * Linearizable reads call [`Core::read_barrier`]: a read index from the leader
//!   (openraft's `get_read_log_id`, batched across concurrent reads), then a wait until this
//!   node has applied up to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use robustmq_proto::placement::raft_peer_client::RaftPeerClient;
use robustmq_proto::placement::{RaftPayload, ResponseHeader};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::Channel;

use common_metrics::grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcClientService};
use tower::Layer;

use crate::error::{Error, Result};
use crate::kv::{Command, CommandResponse, KvReader, LeaseClock, WatchHub};
use crate::node::batch::{run_proposer, run_read_index, Proposal, ReadReply};
use crate::node::metrics::ProposalMetrics;
use crate::raft::network::{peer_channel, peer_limits, NetworkSwitch};
use crate::raft::{NodeId, Raft};

/// The channel forwarded requests travel on: trace-context injection + client metrics.
type ForwardChannel = GrpcClientService<Channel>;

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_value_size: usize,
    pub max_key_size: usize,
    pub request_timeout: Duration,
}

/// Shared state of a running node.
pub struct Core {
    pub id: NodeId,
    pub raft: Raft,
    pub reader: KvReader,
    pub hub: Arc<WatchHub>,
    pub leases: Arc<LeaseClock>,
    /// Test partitions: while isolated, peer traffic fails both ways.
    pub switch: NetworkSwitch,
    pub limits: Limits,
    /// Flips to `true` at shutdown; long-lived streams end on it.
    pub shutdown: watch::Receiver<bool>,
    proposals: mpsc::Sender<Proposal>,
    read_rounds: mpsc::Sender<ReadReply>,
    /// One lazily connected channel per peer address, for forwarding.
    peers: Mutex<HashMap<String, RaftPeerClient<ForwardChannel>>>,
    /// Injects the trace context into forwarded requests and measures them.
    client_layer: GrpcClientLayer,
    /// The log store's committed index (openraft's metrics do not carry it).
    committed: Arc<std::sync::atomic::AtomicU64>,
}

/// What [`Core::start`] is built from.
pub struct CoreParts {
    pub id: NodeId,
    pub raft: Raft,
    pub reader: KvReader,
    pub hub: Arc<WatchHub>,
    pub leases: Arc<LeaseClock>,
    pub switch: NetworkSwitch,
    pub limits: Limits,
    /// Most client commands per proposal.
    pub max_batch: usize,
    /// Propose-to-apply latency and result of each client write.
    pub proposals: ProposalMetrics,
    pub shutdown: watch::Receiver<bool>,
    pub committed: Arc<std::sync::atomic::AtomicU64>,
    /// `grpc_client_*` metrics of forwarded requests.
    pub client_metrics: GrpcClientMetrics,
}

impl Core {
    /// Builds the core and starts its proposal and read-index batchers.
    pub fn start(parts: CoreParts) -> Arc<Core> {
        let CoreParts {
            id,
            raft,
            reader,
            hub,
            leases,
            switch,
            limits,
            max_batch,
            proposals: proposal_metrics,
            shutdown,
            committed,
            client_metrics,
        } = parts;
        let (proposals, proposal_rx) = mpsc::channel(max_batch * 4);
        let (read_rounds, read_rx) = mpsc::channel(4096);
        tokio::spawn(run_proposer(
            raft.clone(),
            proposal_rx,
            max_batch,
            proposal_metrics,
            limits.request_timeout,
        ));
        tokio::spawn(run_read_index(
            raft.clone(),
            read_rx,
            limits.request_timeout,
        ));
        Arc::new(Core {
            id,
            raft,
            reader,
            hub,
            leases,
            switch,
            limits,
            shutdown,
            proposals,
            read_rounds,
            peers: Mutex::new(HashMap::new()),
            client_layer: GrpcClientLayer::new(client_metrics),
            committed,
        })
    }

    /// The committed index as the log store last saved it.
    pub fn committed_index(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The leader's id and address as this node knows them.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n: &BasicNode| n.addr.clone())?;
        Some((id, addr))
    }

    /// Whether this node belongs to a cluster at all (a pristine node outside the initial
    /// cluster does not, until it is added).
    pub fn is_member(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&self.id)
            .is_some()
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
            member_id: self.id,
        }
    }

    /// Applies a write through Raft, wherever this node stands.
    pub async fn write(&self, command: Command) -> Result<CommandResponse> {
        let deadline = Instant::now() + self.limits.request_timeout;
        self.with_leader(deadline, |leader| {
            let command = command.clone();
            async move {
                match leader {
                    None => self.propose_local(command).await,
                    Some(addr) => {
                        self.forward(&addr, &command, deadline, |mut c, r| async move {
                            c.propose(r).await
                        })
                        .await
                    }
                }
            }
        })
        .await
    }

    /// Waits until this node has applied everything committed when the call began
    /// (linearizable), or returns at once for `serializable` reads.
    pub async fn read_barrier(&self, serializable: bool) -> Result<()> {
        if serializable {
            return Ok(());
        }
        let deadline = Instant::now() + self.limits.request_timeout;
        let index = self
            .with_leader(deadline, |leader| async move {
                match leader {
                    None => self.read_index_local().await,
                    Some(addr) => {
                        self.forward(&addr, &(), deadline, |mut c, r| async move {
                            c.read_index(r).await
                        })
                        .await
                    }
                }
            })
            .await?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| Error::Unavailable(format!("waiting to apply index {index}: {e}")))?;
        Ok(())
    }

    /// Renews a lease on the leader; its TTL, 0 if it does not exist.
    pub async fn keep_alive(&self, id: i64) -> Result<i64> {
        let deadline = Instant::now() + self.limits.request_timeout;
        self.with_leader(deadline, |leader| async move {
            match leader {
                None => self.keep_alive_local(id),
                Some(addr) => {
                    self.forward(&addr, &id, deadline, |mut c, r| async move {
                        c.keep_alive(r).await
                    })
                    .await
                }
            }
        })
        .await
    }

    /// Proposes on this node (the leader), through the batcher.
    pub async fn propose_local(&self, command: Command) -> Result<CommandResponse> {
        let (reply, rx) = oneshot::channel();
        let proposal = Proposal {
            command,
            reply,
            start: Instant::now(),
        };
        self.proposals
            .send(proposal)
            .await
            .map_err(|_| Error::Unavailable("node stopping".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("node stopping".into()))?
    }

    /// A read index from this node's Raft (it must be the leader).
    pub async fn read_index_local(&self) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.read_rounds
            .send(reply)
            .await
            .map_err(|_| Error::Unavailable("node stopping".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("node stopping".into()))?
    }

    /// Renews a lease by this node's clock (it must be the leader).
    pub fn keep_alive_local(&self, id: i64) -> Result<i64> {
        let m = self.raft.metrics();
        let leader = m.borrow().current_leader;
        if leader != Some(self.id) {
            return Err(Error::NotLeader(leader));
        }
        Ok(self.leases.keep_alive(id).unwrap_or(0))
    }

    /// Runs `attempt` against the leader (`None`: this node is the leader, else the
    /// leader's address), retrying while there is no leader or the target says it is not
    /// the leader, until `deadline`.
    async fn with_leader<T, F, Fut>(&self, deadline: Instant, attempt: F) -> Result<T>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut metrics = self.raft.metrics();
        loop {
            let res = match self.leader() {
                Some((id, _)) if id == self.id => attempt(None).await,
                Some((_, addr)) => attempt(Some(addr)).await,
                None if !self.is_member() => {
                    return Err(Error::FailedPrecondition(format!(
                        "node {} is not a member of a cluster (not in the initial cluster and not added)",
                        self.id
                    )))
                }
                None => Err(Error::NotLeader(None)),
            };
            match res {
                Err(Error::NotLeader(_)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Unavailable(
                            "no leader within the request timeout".into(),
                        ));
                    }
                    // Wake on the next Raft state change, at most 50 ms later.
                    let waited = tokio::time::timeout(
                        left.min(Duration::from_millis(50)),
                        metrics.changed(),
                    )
                    .await;
                    if let Ok(Err(_)) = waited {
                        return Err(Error::Unavailable("raft stopped".into()));
                    }
                }
                other => return other,
            }
        }
    }

    /// Sends a peer request to the leader at `addr` and decodes its answer.
    async fn forward<Req, Resp, F, Fut>(
        &self,
        addr: &str,
        req: &Req,
        deadline: Instant,
        method: F,
    ) -> Result<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftPeerClient<ForwardChannel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<tonic::Response<RaftPayload>, tonic::Status>,
        >,
    {
        if self.switch.is_isolated() {
            return Err(Error::Unavailable("isolated by the network switch".into()));
        }
        let client = self.peer(addr)?;
        let data = serde_json::to_vec(req).map_err(|e| Error::Raft(e.to_string()))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        );
        let reply = method(client, request)
            .await
            .map_err(|s| Error::from_status(&s))?;
        serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| Error::Raft(format!("leader reply: {e}")))
    }

    fn peer(&self, addr: &str) -> Result<RaftPeerClient<ForwardChannel>> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let channel = peer_channel(addr)
            .map_err(|e| Error::Unavailable(format!("leader address {addr}: {e}")))?;
        let c = peer_limits(RaftPeerClient::new(self.client_layer.layer(channel)));
        peers.insert(addr.to_owned(), c.clone());
        Ok(c)
    }
}

/// Maps a failed proposal.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader(f.leader_id),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::FailedPrecondition(e.to_string())
        }
        RaftError::Fatal(f) => Error::Unavailable(format!("raft stopped: {f}")),
    }
}
