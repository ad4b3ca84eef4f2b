//! Endpoints, leader preference, retries with backoff and deadlines, and the unary calls.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_metrics::grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcClientService};
use robustmq_proto::placement as pb;
use robustmq_proto::placement::cluster_client::ClusterClient;
use robustmq_proto::placement::kv_client::KvClient;
use robustmq_proto::placement::lease_client::LeaseClient;
use robustmq_proto::placement::watch_client::WatchClient;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::error::{Error, Result};

/// A channel with trace-context injection and client metrics.
pub(crate) type Svc = GrpcClientService<Channel>;

/// Where the members are and how patient to be.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Every member's gRPC address (`HOST:PORT`).
    pub endpoints: Vec<String>,
    /// How long one call may take, retries included.
    pub timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// `grpc_client_*` metrics; `None`: recorded nowhere.
    pub metrics: Option<GrpcClientMetrics>,
}

impl ClientConfig {
    /// Defaults: 10 s per call, backoff 50 ms doubling to 1 s.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            metrics: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A placement-center client; clones share connections.
#[derive(Clone)]
pub struct PlacementClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    /// (address, channel) per member, connected lazily.
    channels: Vec<(String, Svc)>,
    /// The member tried first: the leader when known, else the last that answered.
    preferred: AtomicUsize,
    /// Whether `preferred` is the leader as last discovered; cleared when a call fails over,
    /// so the next call asks a member for the leader again.
    leader_known: AtomicBool,
}

/// Whether a failed call may be tried again on another member.
pub(crate) fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
    )
}

impl PlacementClient {
    /// A client of the members in `config` (no connection is made yet). Call it inside a
    /// Tokio runtime: the channels' connection tasks are spawned on it.
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Config("no endpoints".into()));
        }
        let metrics = config
            .metrics
            .clone()
            .unwrap_or_else(|| GrpcClientMetrics::register(&mut prometheus_client_registry()));
        let layer = GrpcClientLayer::new(metrics);
        let mut channels = Vec::new();
        for addr in &config.endpoints {
            let uri = if addr.contains("://") {
                addr.clone()
            } else {
                format!("http://{addr}")
            };
            let endpoint =
                Endpoint::from_shared(uri).map_err(|e| Error::Config(format!("{addr}: {e}")))?;
            let channel = endpoint
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .connect_lazy();
            channels.push((addr.clone(), layer.layer(channel)));
        }
        Ok(PlacementClient {
            inner: Arc::new(Inner {
                config,
                channels,
                preferred: AtomicUsize::new(0),
                leader_known: AtomicBool::new(false),
            }),
        })
    }

    /// Runs `call` on the preferred member, then on the others, with backoff between
    /// rounds, until it succeeds, fails for good, or the deadline passes.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Svc, Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.timeout;
        let mut backoff = inner.config.initial_backoff;
        let n = inner.channels.len();
        let mut last = String::from("no attempt");
        if !inner.leader_known.load(Ordering::Relaxed) {
            self.discover_leader(deadline).await;
        }
        loop {
            let first = inner.preferred.load(Ordering::Relaxed);
            for i in 0..n {
                let idx = (first + i) % n;
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::DeadlineExceeded {
                        timeout: inner.config.timeout,
                        last,
                    });
                }
                match call(inner.channels[idx].1.clone(), left).await {
                    Ok(v) => {
                        if idx != first {
                            inner.preferred.store(idx, Ordering::Relaxed);
                            inner.leader_known.store(n == 1, Ordering::Relaxed);
                        }
                        return Ok(v);
                    }
                    Err(status) if retryable(&status) => {
                        inner.leader_known.store(n == 1, Ordering::Relaxed);
                        tracing::debug!(endpoint = %inner.channels[idx].0, code = ?status.code(), "placement call failed; trying the next member");
                        last = format!("{}: {}", inner.channels[idx].0, status.message());
                    }
                    Err(status) if status.code() == tonic::Code::OutOfRange => {
                        return Err(Error::Compacted(status.message().to_owned()))
                    }
                    Err(status) => return Err(Error::Status(Box::new(status))),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(inner.config.max_backoff);
        }
    }

    /// Asks the members for the leader and prefers it; its address, if a member reported
    /// one among the endpoints. Calls do this by themselves when the leader is not known.
    pub async fn find_leader(&self) -> Result<Option<String>> {
        self.inner.leader_known.store(false, Ordering::Relaxed);
        self.discover_leader(Instant::now() + self.inner.config.timeout)
            .await;
        Ok(self
            .inner
            .leader_known
            .load(Ordering::Relaxed)
            .then(|| self.preferred_endpoint().to_owned()))
    }

    /// The member calls go to first (the leader once discovered).
    pub fn preferred_endpoint(&self) -> &str {
        &self.inner.channels
            [self.inner.preferred.load(Ordering::Relaxed) % self.inner.channels.len()]
        .0
    }

    /// Asks members, in turn, who leads; points `preferred` at the leader if it is one of
    /// the endpoints. Best effort: failures leave the preference as it was.
    async fn discover_leader(&self, deadline: Instant) {
        let inner = &self.inner;
        let n = inner.channels.len();
        if n == 1 {
            inner.leader_known.store(true, Ordering::Relaxed);
            return;
        }
        let first = inner.preferred.load(Ordering::Relaxed);
        for i in 0..n {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            if left.is_zero() {
                return;
            }
            let svc = inner.channels[(first + i) % n].1.clone();
            let Ok(status) = ClusterClient::new(svc)
                .status(request(pb::StatusRequest {}, left))
                .await
            else {
                continue;
            };
            let status = status.into_inner();
            if let Some(idx) = inner
                .channels
                .iter()
                .position(|(addr, _)| *addr == status.leader_addr)
            {
                inner.preferred.store(idx, Ordering::Relaxed);
                inner.leader_known.store(true, Ordering::Relaxed);
            }
            return;
        }
    }

    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<pb::PutResponse> {
        self.put_with(pb::PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
        })
        .await
    }

    pub async fn put_with(&self, req: pb::PutRequest) -> Result<pb::PutResponse> {
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .put(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    /// A key's current value, linearizably; `None` if it does not exist.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<pb::KeyValue>> {
        Ok(self
            .get_with(pb::GetRequest {
                key: key.into(),
                serializable: false,
            })
            .await?
            .kv)
    }

    pub async fn get_with(&self, req: pb::GetRequest) -> Result<pb::GetResponse> {
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .get(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    /// Keys under `prefix` (at most `limit`; 0: all), linearizably.
    pub async fn range(&self, prefix: impl Into<Vec<u8>>, limit: i64) -> Result<pb::RangeResponse> {
        self.range_with(pb::RangeRequest {
            prefix: prefix.into(),
            limit,
            serializable: false,
            keys_only: false,
        })
        .await
    }

    pub async fn range_with(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse> {
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .range(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<pb::DeleteResponse> {
        let req = pb::DeleteRequest {
            key: key.into(),
            prev_kv: false,
        };
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .delete(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    pub async fn delete_prefix(
        &self,
        prefix: impl Into<Vec<u8>>,
    ) -> Result<pb::DeleteRangeResponse> {
        let req = pb::DeleteRangeRequest {
            prefix: prefix.into(),
            prev_kv: false,
        };
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .delete_range(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    pub async fn txn(&self, req: pb::TxnRequest) -> Result<pb::TxnResponse> {
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                KvClient::new(svc)
                    .txn(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    /// Grants a lease of `ttl` seconds.
    pub async fn lease_grant(&self, ttl: i64) -> Result<pb::LeaseGrantResponse> {
        self.call(|svc, t| async move {
            LeaseClient::new(svc)
                .lease_grant(request(pb::LeaseGrantRequest { ttl }, t))
                .await
                .map(|r| r.into_inner())
        })
        .await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<pb::LeaseRevokeResponse> {
        self.call(|svc, t| async move {
            LeaseClient::new(svc)
                .lease_revoke(request(pb::LeaseRevokeRequest { id }, t))
                .await
                .map(|r| r.into_inner())
        })
        .await
    }

    /// Leader, term, members and progress as the first answering member sees them.
    pub async fn status(&self) -> Result<pb::StatusResponse> {
        self.call(|svc, t| async move {
            ClusterClient::new(svc)
                .status(request(pb::StatusRequest {}, t))
                .await
                .map(|r| r.into_inner())
        })
        .await
    }

    pub async fn add_learner(
        &self,
        node_id: u64,
        addr: impl Into<String>,
    ) -> Result<pb::StatusResponse> {
        let req = pb::AddLearnerRequest {
            node_id,
            addr: addr.into(),
        };
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                ClusterClient::new(svc)
                    .add_learner(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    pub async fn change_membership(&self, voters: Vec<u64>) -> Result<pb::StatusResponse> {
        let req = pb::ChangeMembershipRequest { voters };
        self.call(|svc, t| {
            let req = req.clone();
            async move {
                ClusterClient::new(svc)
                    .change_membership(request(req, t))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    /// The Watch client on the preferred member, then the next (for resuming streams).
    pub(crate) fn watch_client(&self, attempt: usize) -> (String, WatchClient<Svc>) {
        let n = self.inner.channels.len();
        let idx = (self.inner.preferred.load(Ordering::Relaxed) + attempt) % n;
        let (addr, svc) = &self.inner.channels[idx];
        (addr.clone(), WatchClient::new(svc.clone()))
    }

    /// The Lease client on the preferred member, then the next.
    pub(crate) fn lease_client(&self, attempt: usize) -> LeaseClient<Svc> {
        let n = self.inner.channels.len();
        let idx = (self.inner.preferred.load(Ordering::Relaxed) + attempt) % n;
        LeaseClient::new(self.inner.channels[idx].1.clone())
    }
}

/// A request with a gRPC deadline.
pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout.max(Duration::from_millis(1)));
    r
}

fn prometheus_client_registry() -> prometheus_client::registry::Registry {
    prometheus_client::registry::Registry::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(retryable(&tonic::Status::unavailable("leader gone")));
        assert!(retryable(&tonic::Status::deadline_exceeded("slow")));
        assert!(!retryable(&tonic::Status::invalid_argument("too big")));
        assert!(!retryable(&tonic::Status::not_found("lease")));
        assert!(!retryable(&tonic::Status::failed_precondition(
            "not a member"
        )));
    }

    #[tokio::test]
    async fn configuration_errors_are_reported() {
        assert!(matches!(
            PlacementClient::new(ClientConfig::new(Vec::<String>::new())),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            PlacementClient::new(ClientConfig::new(["bad host:1"])),
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_fails_at_the_deadline() {
        // A port nothing listens on: bind, learn it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = PlacementClient::new(
            ClientConfig::new([format!("127.0.0.1:{port}")])
                .with_timeout(Duration::from_millis(300)),
        )
        .unwrap();
        let start = Instant::now();
        let err = client.get("k").await.unwrap_err();
        assert!(matches!(err, Error::DeadlineExceeded { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
