//! The client-facing `Lease` service: grant, revoke and keep-alive streams.

use std::pin::Pin;
use std::sync::Arc;

use futures::{SinkExt, Stream, StreamExt};
use robustmq_proto::placement as pb;
use robustmq_proto::placement::lease_server::Lease;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::kv::{Command, CommandResponse};
use crate::node::Core;

/// Serves `robustmq.placement.v1.Lease`.
pub struct LeaseService {
    core: Arc<Core>,
}

impl LeaseService {
    pub fn new(core: Arc<Core>) -> Self {
        LeaseService { core }
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let ttl = req.into_inner().ttl;
        if ttl < 1 {
            return Err(Error::InvalidArgument(format!(
                "lease ttl {ttl} must be at least 1 second"
            ))
            .into());
        }
        match self.core.write(Command::LeaseGrant { ttl }).await? {
            CommandResponse::LeaseGranted { revision, id, ttl } => {
                Ok(Response::new(pb::LeaseGrantResponse {
                    header: Some(self.core.header(revision)),
                    id,
                    ttl,
                }))
            }
            other => Err(Error::Raft(format!("unexpected state machine answer {other:?}")).into()),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = req.into_inner().id;
        match self.core.write(Command::LeaseRevoke { id }).await? {
            CommandResponse::LeaseRevoked { revision } => {
                Ok(Response::new(pb::LeaseRevokeResponse {
                    header: Some(self.core.header(revision)),
                }))
            }
            other => Err(Error::Raft(format!("unexpected state machine answer {other:?}")).into()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (mut tx, rx) = futures::channel::mpsc::channel(16);
        let core = self.core.clone();
        let mut shutdown = core.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.next() => next,
                    _ = shutdown.changed() => {
                        let _ = tx.send(Err(Status::unavailable("node shutting down"))).await;
                        return;
                    }
                };
                let reply = match next {
                    None => return,
                    Some(Err(_)) => return,
                    Some(Ok(r)) => match core.keep_alive(r.id).await {
                        Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                            header: Some(core.header(core.hub.current_revision())),
                            id: r.id,
                            ttl,
                        }),
                        Err(e) => Err(Status::from(e)),
                    },
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }
}
