//! The peer service (`robustmq.journal.v1.JournalPeer`): journal node to journal node
//! only — replication fetches, votes, leader announcements, replica creation/deletion.

use std::sync::Arc;

use robustmq_proto::journal as pb;
use robustmq_proto::journal::journal_peer_server::JournalPeer;
use tonic::{Request, Response, Status};

use crate::error::JournalError;
use crate::node::JournalNode;

/// The tonic implementation of the peer service.
#[derive(Debug, Clone)]
pub struct JournalPeerService {
    node: Arc<JournalNode>,
}

impl JournalPeerService {
    pub fn new(node: Arc<JournalNode>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl JournalPeer for JournalPeerService {
    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let req = request.into_inner();
        let shard = self.node.shard(&req.shard)?;
        if !shard.meta().replicas.contains(&req.follower_id) {
            return Err(JournalError::InvalidArgument(format!(
                "node {} is not a replica of shard {:?}",
                req.follower_id, req.shard
            ))
            .into());
        }
        Ok(Response::new(shard.replica().handle_fetch(req).await?))
    }

    async fn request_vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = request.into_inner();
        let shard = self.node.shard(&req.shard)?;
        Ok(Response::new(shard.replica().handle_vote(req)?))
    }

    async fn announce(
        &self,
        request: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceResponse>, Status> {
        let req = request.into_inner();
        let shard = self.node.shard(&req.shard)?;
        if !shard.meta().replicas.contains(&req.leader_id) {
            return Err(JournalError::InvalidArgument(format!(
                "node {} is not a replica",
                req.leader_id
            ))
            .into());
        }
        Ok(Response::new(shard.replica().handle_announce(req)?))
    }

    async fn create_replica(
        &self,
        request: Request<pb::CreateReplicaRequest>,
    ) -> Result<Response<pb::CreateReplicaResponse>, Status> {
        let req = request.into_inner();
        self.node.create_replica(&req.shard, req.replicas).await?;
        Ok(Response::new(pb::CreateReplicaResponse {}))
    }

    async fn delete_replica(
        &self,
        request: Request<pb::DeleteReplicaRequest>,
    ) -> Result<Response<pb::DeleteReplicaResponse>, Status> {
        let req = request.into_inner();
        self.node.delete_replica(&req.shard).await?;
        Ok(Response::new(pb::DeleteReplicaResponse {}))
    }
}
