//! The gRPC services: [`JournalService`] (the client API, this file) and
//! [`peer::JournalPeerService`] (node to node). Both are thin: they check and convert
//! wire messages, call the node or a shard, and map errors with the one
//! `From<JournalError> for Status`.

pub mod convert;
pub mod peer;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use robustmq_proto::journal as pb;
use robustmq_proto::journal::journal_server::Journal;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::JournalError;
use crate::node::JournalNode;
use crate::record::NewRecord;
use crate::shard::Shard;

/// Records per read when the request says 0, and the most a read may ask for.
const DEFAULT_MAX_RECORDS: usize = 1000;
const MAX_RECORDS: usize = 100_000;
/// Bytes per read when the request says 0, and the most a read may ask for.
const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Span links added per append (one per record carrying a `traceparent`), at most.
const MAX_LINKS: usize = 32;

/// The tonic implementation of the client API.
#[derive(Debug, Clone)]
pub struct JournalService {
    node: Arc<JournalNode>,
    /// Cancelled at shutdown: ends every `Subscribe` stream so the server can drain.
    shutdown: CancellationToken,
}

impl JournalService {
    pub fn new(node: Arc<JournalNode>, shutdown: CancellationToken) -> Self {
        Self { node, shutdown }
    }

    fn addr_of(&self) -> impl Fn(u64) -> String + '_ {
        move |id| self.node.node_addr(id).unwrap_or_default()
    }
}

fn offset(value: i64) -> Result<u64, JournalError> {
    u64::try_from(value)
        .map_err(|_| JournalError::InvalidArgument(format!("offset {value} is negative")))
}

fn limits(max_records: u32, max_bytes: u64) -> (usize, usize) {
    let records = match max_records as usize {
        0 => DEFAULT_MAX_RECORDS,
        n => n.min(MAX_RECORDS),
    };
    let bytes = match max_bytes as usize {
        0 => DEFAULT_MAX_BYTES,
        n => n.min(MAX_BYTES),
    };
    (records, bytes)
}

/// Links the current span to the creation context of the records that carry one (the
/// batch span has many parents; W3C/OTel messaging conventions use links for that).
fn link_records(records: &[NewRecord]) {
    let span = tracing::Span::current();
    for r in records
        .iter()
        .filter(|r| !r.headers.is_empty())
        .take(MAX_LINKS)
    {
        let cx = common_metrics::propagation::extract_from_pairs(
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        use opentelemetry::trace::TraceContextExt;
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.add_link(sc);
        }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Journal for JournalService {
    #[tracing::instrument(name = "journal.persist", skip_all, fields(shard = %request.get_ref().shard, records = request.get_ref().records.len()))]
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        let shard = self.node.shard(&req.shard)?;
        let records: Vec<NewRecord> = req.records.into_iter().map(NewRecord::from).collect();
        link_records(&records);
        // Measured only for acknowledged appends: a rejected one says nothing about
        // how long durability takes, and an ambiguous one is counted by the gRPC metrics.
        let (base, last) = shard.append(records).await?;
        self.node.metrics().append_latency.observe_duration(start);
        Ok(Response::new(pb::AppendResponse {
            base_offset: base as i64,
            last_offset: last as i64,
        }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let req = request.into_inner();
        let from = offset(req.offset)?;
        let shard = self.node.shard(&req.shard)?;
        let (max_records, max_bytes) = limits(req.max_records, req.max_bytes);
        let r = shard.read(from, max_records, max_bytes).await?;
        Ok(Response::new(pb::ReadResponse {
            records: r.records.into_iter().map(pb::Record::from).collect(),
            next_offset: r.next_offset as i64,
            end_offset: r.end_offset as i64,
            start_offset: r.start_offset as i64,
        }))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let req = request.into_inner();
        let from = offset(req.offset)?;
        let shard = self.node.shard(&req.shard)?;
        shard.check_subscribe(from)?;
        let (max_records, max_bytes) = limits(req.max_records, req.max_bytes);
        let tail = Tail {
            rx: shard.watch(),
            closed: shard.closed(),
            shard,
            offset: from,
            max_records,
            max_bytes,
            shutdown: self.shutdown.clone(),
            done: false,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            tail,
            Tail::next,
        ))))
    }

    async fn lookup_offset(
        &self,
        request: Request<pb::LookupOffsetRequest>,
    ) -> Result<Response<pb::LookupOffsetResponse>, Status> {
        let req = request.into_inner();
        if req.timestamp_ms < 0 {
            return Err(JournalError::InvalidArgument("timestamp_ms is negative".into()).into());
        }
        let shard = self.node.shard(&req.shard)?;
        let offset = shard.lookup_offset(req.timestamp_ms).await?;
        Ok(Response::new(pb::LookupOffsetResponse {
            offset: offset as i64,
        }))
    }

    async fn create_shard(
        &self,
        request: Request<pb::CreateShardRequest>,
    ) -> Result<Response<pb::CreateShardResponse>, Status> {
        let req = request.into_inner();
        let spec = self
            .node
            .create_shard(&req.shard, req.replication_factor as usize)
            .await?;
        let info = match self.node.shard(&spec.name) {
            Ok(shard) => convert::shard_info(shard.status(), self.node.node_id(), self.addr_of()),
            Err(_) => pb::ShardInfo {
                name: spec.name,
                replicas: spec
                    .replicas
                    .iter()
                    .map(|&id| pb::Replica {
                        node_id: id,
                        addr: self.addr_of()(id),
                        in_sync: false,
                        log_end_offset: -1,
                    })
                    .collect(),
                node_id: self.node.node_id(),
                ..Default::default()
            },
        };
        Ok(Response::new(pb::CreateShardResponse { info: Some(info) }))
    }

    async fn delete_shard(
        &self,
        request: Request<pb::DeleteShardRequest>,
    ) -> Result<Response<pb::DeleteShardResponse>, Status> {
        let req = request.into_inner();
        self.node.delete_shard(&req.shard).await?;
        Ok(Response::new(pb::DeleteShardResponse {}))
    }

    async fn list_shards(
        &self,
        _request: Request<pb::ListShardsRequest>,
    ) -> Result<Response<pb::ListShardsResponse>, Status> {
        let shards = self
            .node
            .list()
            .into_iter()
            .map(|s| convert::shard_info(s, self.node.node_id(), self.addr_of()))
            .collect();
        Ok(Response::new(pb::ListShardsResponse { shards }))
    }

    async fn shard_info(
        &self,
        request: Request<pb::ShardInfoRequest>,
    ) -> Result<Response<pb::ShardInfoResponse>, Status> {
        let req = request.into_inner();
        let shard = self.node.shard(&req.shard)?;
        let info = convert::shard_info(shard.status(), self.node.node_id(), self.addr_of());
        Ok(Response::new(pb::ShardInfoResponse { info: Some(info) }))
    }
}

/// The state of one `Subscribe` stream: read what is committed, then sleep on the
/// shard's watch until the next commit (no polling).
struct Tail {
    shard: Arc<Shard>,
    offset: u64,
    max_records: usize,
    max_bytes: usize,
    rx: tokio::sync::watch::Receiver<crate::replication::ShardView>,
    /// The shard was closed (deleted, or the node is stopping).
    closed: CancellationToken,
    shutdown: CancellationToken,
    done: bool,
}

impl Tail {
    async fn next(mut self) -> Option<(Result<pb::SubscribeResponse, Status>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let hw = self.rx.borrow_and_update().hw;
            if self.offset < hw {
                match self
                    .shard
                    .read(self.offset, self.max_records, self.max_bytes)
                    .await
                {
                    Ok(r) if !r.records.is_empty() => {
                        self.offset = r.next_offset;
                        let resp = pb::SubscribeResponse {
                            records: r.records.into_iter().map(pb::Record::from).collect(),
                            next_offset: r.next_offset as i64,
                        };
                        return Some((Ok(resp), self));
                    }
                    Ok(_) => {}
                    Err(e) => return self.end(e.into()),
                }
            }
            tokio::select! {
                changed = self.rx.changed() => if changed.is_err() {
                    return self.end(JournalError::ShuttingDown.into());
                },
                _ = self.closed.cancelled() => {
                    let name = self.shard.name().to_owned();
                    return self.end(JournalError::Unavailable(format!("shard {name:?} was closed on this node")).into());
                }
                _ = self.shutdown.cancelled() => return self.end(JournalError::ShuttingDown.into()),
            }
        }
    }

    fn end(mut self, status: Status) -> Option<(Result<pb::SubscribeResponse, Status>, Self)> {
        self.done = true;
        Some((Err(status), self))
    }
}
