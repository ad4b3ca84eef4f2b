//! A client of the journal's client API that finds shard leaders and follows them.
//!
//! Retries only what is safe: `FailedPrecondition` means the server refused before
//! writing (not the leader, too few in-sync replicas), so the append is re-sent to the
//! leader it names or rediscovers. Any other error — `Unavailable`, a broken connection —
//! may hide an append that was written, so it is returned to the caller, who knows
//! whether a duplicate matters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use robustmq_proto::journal as pb;
use robustmq_proto::journal::journal_client::JournalClient as Rpc;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Metadata key carrying the leader's address on a `NotLeader` error, for clients that
/// follow redirects.
pub const LEADER_ADDR_METADATA: &str = "x-journal-leader-addr";

/// Pause between attempts while a leader is being elected.
const BACKOFF: Duration = Duration::from_millis(50);

/// A leader-following journal client over a set of node addresses (`host:port`).
#[derive(Debug)]
pub struct JournalClient {
    addrs: Vec<String>,
    rpcs: HashMap<String, Rpc<Channel>>,
    /// Last known leader address per shard.
    leaders: HashMap<String, String>,
    /// How long an append keeps looking for a leader.
    retry_for: Duration,
}

impl JournalClient {
    /// A client for the nodes at `addrs`; connections open lazily.
    pub fn new(addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            addrs: addrs.into_iter().map(Into::into).collect(),
            rpcs: HashMap::new(),
            leaders: HashMap::new(),
            retry_for: Duration::from_secs(10),
        }
    }

    /// Sets how long appends and reads keep looking for a leader (default 10 s).
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// Replaces the node addresses (the journal's membership changed); known leaders
    /// stay until they fail.
    pub fn set_addrs(&mut self, addrs: impl IntoIterator<Item = impl Into<String>>) {
        self.addrs = addrs.into_iter().map(Into::into).collect();
    }

    /// The node addresses this client tries.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Creates `shard` with `replication_factor` replicas (0: the nodes' default) unless
    /// it exists; true when this call created it. Tries each node in turn.
    pub async fn ensure_shard(
        &mut self,
        shard: &str,
        replication_factor: u32,
    ) -> Result<bool, Status> {
        let mut last = Status::unavailable("no journal nodes known");
        for addr in self.addrs.clone() {
            let req = pb::CreateShardRequest {
                shard: shard.to_owned(),
                replication_factor,
            };
            match self.rpc(&addr)?.create_shard(req).await {
                Ok(_) => return Ok(true),
                Err(s) if s.code() == Code::AlreadyExists => return Ok(false),
                Err(s) if s.code() == Code::InvalidArgument => return Err(s),
                Err(s) => last = s,
            }
        }
        Err(last)
    }

    /// The raw gRPC client of `addr`.
    pub fn rpc(&mut self, addr: &str) -> Result<Rpc<Channel>, Status> {
        if let Some(rpc) = self.rpcs.get(addr) {
            return Ok(rpc.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let rpc = Rpc::new(endpoint.connect_lazy())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        self.rpcs.insert(addr.to_owned(), rpc.clone());
        Ok(rpc)
    }

    /// Finds the leader of `shard`: a node that reports itself as its leader.
    pub async fn find_leader(&mut self, shard: &str) -> Result<String, Status> {
        let deadline = Instant::now() + self.retry_for;
        let mut last = Status::unavailable(format!("no leader found for shard {shard:?}"));
        loop {
            let mut candidates: Vec<String> =
                self.leaders.get(shard).into_iter().cloned().collect();
            candidates.extend(self.addrs.iter().cloned());
            for addr in candidates {
                let req = pb::ShardInfoRequest {
                    shard: shard.to_owned(),
                };
                match self.rpc(&addr)?.shard_info(req).await {
                    Ok(resp) => {
                        let info = resp.into_inner().info.unwrap_or_default();
                        if info.leader_id != 0 && info.leader_id == info.node_id {
                            self.leaders.insert(shard.to_owned(), addr.clone());
                            return Ok(addr);
                        }
                    }
                    Err(s) if s.code() == Code::NotFound => last = s,
                    Err(s) => last = s,
                }
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(BACKOFF).await;
        }
    }

    /// What the leader of `shard` reports about it (its committed and local log ends).
    pub async fn leader_info(&mut self, shard: &str) -> Result<pb::ShardInfo, Status> {
        let addr = match self.leaders.get(shard) {
            Some(addr) => addr.clone(),
            None => self.find_leader(shard).await?,
        };
        let req = pb::ShardInfoRequest {
            shard: shard.to_owned(),
        };
        match self.rpc(&addr)?.shard_info(req).await {
            Ok(resp) => Ok(resp.into_inner().info.unwrap_or_default()),
            Err(s) => {
                self.leaders.remove(shard);
                Err(s)
            }
        }
    }

    /// Appends `records` at the leader of `shard`, following redirects.
    pub async fn append(
        &mut self,
        shard: &str,
        records: Vec<pb::Record>,
    ) -> Result<pb::AppendResponse, Status> {
        self.append_with(shard, records, &MetadataMap::new()).await
    }

    /// [`JournalClient::append`] with `metadata` on every attempt (a W3C `traceparent`
    /// makes the journal's spans part of the caller's trace).
    pub async fn append_with(
        &mut self,
        shard: &str,
        records: Vec<pb::Record>,
        metadata: &MetadataMap,
    ) -> Result<pb::AppendResponse, Status> {
        let deadline = Instant::now() + self.retry_for;
        let req = pb::AppendRequest {
            shard: shard.to_owned(),
            records,
        };
        loop {
            let addr = match self.leaders.get(shard) {
                Some(addr) => addr.clone(),
                None => self.find_leader(shard).await?,
            };
            let mut request = tonic::Request::new(req.clone());
            *request.metadata_mut() = metadata.clone();
            match self.rpc(&addr)?.append(request).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) if s.code() == Code::FailedPrecondition => {
                    self.leaders.remove(shard);
                    if let Some(hint) = s
                        .metadata()
                        .get(LEADER_ADDR_METADATA)
                        .and_then(|v| v.to_str().ok())
                    {
                        self.leaders.insert(shard.to_owned(), hint.to_owned());
                    }
                    if Instant::now() >= deadline {
                        return Err(s);
                    }
                    tokio::time::sleep(BACKOFF / 2).await;
                }
                Err(s) => {
                    self.leaders.remove(shard);
                    return Err(s);
                }
            }
        }
    }

    /// Reads committed records of `shard` from `offset` at its leader.
    pub async fn read(
        &mut self,
        shard: &str,
        offset: i64,
        max_records: u32,
    ) -> Result<pb::ReadResponse, Status> {
        let addr = match self.leaders.get(shard) {
            Some(addr) => addr.clone(),
            None => self.find_leader(shard).await?,
        };
        let req = pb::ReadRequest {
            shard: shard.to_owned(),
            offset,
            max_records,
            max_bytes: 0,
        };
        let result = self.rpc(&addr)?.read(req).await;
        if result.is_err() {
            self.leaders.remove(shard);
        }
        result.map(tonic::Response::into_inner)
    }

    /// Every committed record of `shard` from `offset` up to the committed end.
    pub async fn read_all(
        &mut self,
        shard: &str,
        mut offset: i64,
    ) -> Result<Vec<pb::Record>, Status> {
        let mut out = Vec::new();
        loop {
            let resp = self.read(shard, offset, 0).await?;
            if resp.records.is_empty() {
                return Ok(out);
            }
            offset = resp.next_offset;
            out.extend(resp.records);
        }
    }
}
