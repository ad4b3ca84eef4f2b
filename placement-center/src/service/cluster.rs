//! The client-facing `Cluster` service: status, and membership changes (run on the
//! leader; a follower forwards them to it over the same service).

use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::{BasicNode, ServerState};
use robustmq_proto::placement as pb;
use robustmq_proto::placement::cluster_client::ClusterClient;
use robustmq_proto::placement::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::node::core::write_error;
use crate::node::Core;

/// Serves `robustmq.placement.v1.Cluster`.
pub struct ClusterService {
    core: Arc<Core>,
}

impl ClusterService {
    pub fn new(core: Arc<Core>) -> Self {
        ClusterService { core }
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> pb::StatusResponse {
        status(&self.core)
    }

    /// `Some(client)` of the leader when this node is not it.
    async fn leader_client(
        &self,
    ) -> Result<Option<ClusterClient<tonic::transport::Channel>>, Status> {
        match self.core.leader() {
            Some((id, _)) if id == self.core.id => Ok(None),
            Some((_, addr)) => {
                let client = ClusterClient::connect(format!("http://{addr}"))
                    .await
                    .map_err(|e| Error::Unavailable(format!("leader {addr}: {e}")))?;
                Ok(Some(client))
            }
            None => Err(Error::Unavailable("no leader known".into()).into()),
        }
    }
}

/// Leader, term, members and replication progress as `core` sees them.
pub fn status(core: &Core) -> pb::StatusResponse {
    let m = core.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| pb::Member {
            id: *id,
            addr: node.addr.clone(),
            voter: voters.contains(id),
            matched_index: m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned())
                .map(|l| l.map_or(0, |l| l.index)),
        })
        .collect();
    let leader_addr = m
        .current_leader
        .and_then(|l| membership.get_node(&l))
        .map_or_else(String::new, |n: &BasicNode| n.addr.clone());
    pb::StatusResponse {
        node_id: core.id,
        leader_id: m.current_leader.unwrap_or(0),
        leader_addr,
        term: m.current_term,
        state: state_name(m.state).into(),
        members,
        last_log_index: m.last_log_index.unwrap_or(0),
        committed_index: core.committed_index(),
        applied_index: m.last_applied.map_or(0, |l| l.index),
        revision: core.hub.current_revision(),
    }
}

/// The state's name as the API reports it.
pub fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.status()))
    }

    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req = req.into_inner();
        if req.node_id == 0 || req.addr.is_empty() {
            return Err(Error::InvalidArgument(
                "add_learner needs a non-zero node_id and an addr".into(),
            )
            .into());
        }
        if let Some(mut leader) = self.leader_client().await? {
            return leader.add_learner(req).await;
        }
        self.core
            .raft
            .add_learner(req.node_id, BasicNode { addr: req.addr }, true)
            .await
            .map_err(write_error)?;
        Ok(Response::new(self.status()))
    }

    async fn change_membership(
        &self,
        req: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req = req.into_inner();
        if req.voters.is_empty() {
            return Err(Error::InvalidArgument(
                "change_membership needs at least one voter".into(),
            )
            .into());
        }
        if let Some(mut leader) = self.leader_client().await? {
            return leader.change_membership(req).await;
        }
        let voters: BTreeSet<u64> = req.voters.into_iter().collect();
        self.core
            .raft
            .change_membership(voters, false)
            .await
            .map_err(write_error)?;
        Ok(Response::new(self.status()))
    }
}
