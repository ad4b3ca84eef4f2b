//! The client-facing `Kv` service: puts, reads, deletes and transactions.

use std::sync::Arc;

use robustmq_proto::placement as pb;
use robustmq_proto::placement::kv_server::Kv;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::kv::command::{Op, OpResponse, TxnOp};
use crate::kv::{Command, CommandResponse};
use crate::node::Core;
use crate::service::convert;

/// Serves `robustmq.placement.v1.Kv`.
pub struct KvService {
    core: Arc<Core>,
}

impl KvService {
    pub fn new(core: Arc<Core>) -> Self {
        KvService { core }
    }

    /// Applies a command whose answer is a list of operation results.
    async fn write_ops(&self, command: Command) -> Result<(i64, bool, Vec<OpResponse>)> {
        match self.core.write(command).await? {
            CommandResponse::Ops {
                revision,
                succeeded,
                responses,
            } => Ok((revision, succeeded, responses)),
            other => Err(Error::Raft(format!(
                "unexpected state machine answer {other:?}"
            ))),
        }
    }

    /// The single result of a one-operation command.
    async fn write_one(&self, op: Op) -> Result<(i64, OpResponse)> {
        let command = match op {
            Op::Put(p) => Command::Put(p),
            Op::Delete(d) => Command::Delete(d),
            Op::DeleteRange(d) => Command::DeleteRange(d),
            Op::Get(_) | Op::Range(_) => {
                return Err(Error::InvalidArgument("reads are not written".into()))
            }
        };
        let (revision, _, mut responses) = self.write_ops(command).await?;
        let r = responses
            .pop()
            .ok_or_else(|| Error::Raft("empty state machine answer".into()))?;
        Ok((revision, r))
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let op = convert::put_op(req.into_inner(), &self.core.limits)?;
        let (revision, r) = self.write_one(Op::Put(op)).await?;
        let prev_kv = match r {
            OpResponse::Put { prev_kv } => prev_kv.map(Into::into),
            _ => None,
        };
        Ok(Response::new(pb::PutResponse {
            header: Some(self.core.header(revision)),
            prev_kv,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        convert::check_key(&req.key, &self.core.limits)?;
        self.core.read_barrier(req.serializable).await?;
        let (kv, revision) = self.core.reader.get(&req.key)?;
        Ok(Response::new(pb::GetResponse {
            header: Some(self.core.header(revision)),
            kv: kv.map(Into::into),
        }))
    }

    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let req = req.into_inner();
        let op = convert::range_op(&req)?;
        self.core.read_barrier(req.serializable).await?;
        let r = self.core.reader.range(&op)?;
        Ok(Response::new(pb::RangeResponse {
            header: Some(self.core.header(r.revision)),
            kvs: r.kvs.into_iter().map(Into::into).collect(),
            more: r.more,
            count: r.count,
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let op = convert::delete_op(req.into_inner(), &self.core.limits)?;
        let (revision, r) = self.write_one(Op::Delete(op)).await?;
        let (deleted, prev_kv) = match r {
            OpResponse::Delete { deleted, prev_kvs } => {
                (deleted, prev_kvs.into_iter().next().map(Into::into))
            }
            _ => (0, None),
        };
        Ok(Response::new(pb::DeleteResponse {
            header: Some(self.core.header(revision)),
            deleted,
            prev_kv,
        }))
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let op = convert::delete_range_op(req.into_inner())?;
        let (revision, r) = self.write_one(Op::DeleteRange(op)).await?;
        let (deleted, prev_kvs) = match r {
            OpResponse::Delete { deleted, prev_kvs } => {
                (deleted, prev_kvs.into_iter().map(Into::into).collect())
            }
            _ => (0, Vec::new()),
        };
        Ok(Response::new(pb::DeleteRangeResponse {
            header: Some(self.core.header(revision)),
            deleted,
            prev_kvs,
        }))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let req = req.into_inner();
        let limits = self.core.limits;
        let txn = TxnOp {
            compare: req
                .compare
                .into_iter()
                .map(|c| convert::compare(c, &limits))
                .collect::<Result<_>>()?,
            success: req
                .success
                .into_iter()
                .map(|o| convert::request_op(o, &limits))
                .collect::<Result<_>>()?,
            failure: req
                .failure
                .into_iter()
                .map(|o| convert::request_op(o, &limits))
                .collect::<Result<_>>()?,
        };
        let (revision, succeeded, responses) = self.write_ops(Command::Txn(txn.clone())).await?;
        let header = self.core.header(revision);
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let responses = ops
            .iter()
            .zip(responses)
            .map(|(op, r)| convert::response_op(op, r, header))
            .collect();
        Ok(Response::new(pb::TxnResponse {
            header: Some(header),
            succeeded,
            responses,
        }))
    }
}
