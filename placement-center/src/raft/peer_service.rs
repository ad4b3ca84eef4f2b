//! The server side of the peer-only `RaftPeer` service: openraft's RPCs from other
//! members, and the requests followers hand to the leader (writes, read indexes,
//! keep-alives). Payloads are serde JSON of internal types; clients never see them.

use std::sync::Arc;

use robustmq_proto::placement::raft_peer_server::RaftPeer;
use robustmq_proto::placement::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::kv::Command;
use crate::node::Core;

/// Serves peers on behalf of this node's Raft.
pub struct RaftPeerService {
    core: Arc<Core>,
}

impl RaftPeerService {
    pub fn new(core: Arc<Core>) -> Self {
        RaftPeerService { core }
    }

    fn check_switch(&self) -> Result<(), Status> {
        if self.core.switch.is_isolated() {
            return Err(Status::unavailable("isolated by the network switch"));
        }
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("bad peer payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let data = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let res = self.core.raft.append_entries(decode(req)?).await;
        encode(&res)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let res = self.core.raft.vote(decode(req)?).await;
        encode(&res)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let res = self.core.raft.install_snapshot(decode(req)?).await;
        encode(&res)
    }

    async fn propose(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let command: Command = decode(req)?;
        let res = self.core.propose_local(command).await?;
        encode(&res)
    }

    async fn read_index(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let () = decode(req)?;
        let index = self.core.read_index_local().await?;
        encode(&index)
    }

    async fn keep_alive(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_switch()?;
        let id: i64 = decode(req)?;
        let ttl = self.core.keep_alive_local(id)?;
        encode(&ttl)
    }
}
