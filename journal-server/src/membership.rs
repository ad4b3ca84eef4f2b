//! This node's registration in the placement center (kind `"journal"`): registered once
//! the server serves, retried with backoff while the placement center is unreachable
//! (never fatal), `/readyz` not ready until then, deregistered on shutdown so the node
//! disappears for every watcher at once instead of after its lease TTL.
//!
//! Discovery only: replication still uses the static `[[nodes]]` of the config.

use std::net::SocketAddr;
use std::time::Duration;

use common_metrics::grpc::GrpcClientMetrics;
use common_metrics::Readiness;
use placement_client::{ClientConfig, NodeInfo, PlacementClient, Registration};
use tokio::task::JoinHandle;

use crate::config::JournalConfig;
use crate::error::{ConfigError, Result};

/// The kind journal nodes register as.
pub const KIND: &str = "journal";
/// Backoff between registration attempts.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits for the deregistration (the lease expires anyway).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// What this node registers and where, prepared when the server binds.
pub struct Membership {
    client: PlacementClient,
    info: NodeInfo,
    ttl_secs: i64,
}

impl Membership {
    /// `None` when `[placement] endpoints` is empty. `grpc` and `metrics` are the bound
    /// addresses (tests bind port 0); `advertise` replaces the gRPC one, and its host
    /// replaces an unspecified metrics host.
    pub fn new(
        config: &JournalConfig,
        grpc: SocketAddr,
        metrics: Option<SocketAddr>,
        client_metrics: GrpcClientMetrics,
    ) -> Result<Option<Self>> {
        let pc = &config.placement;
        if !pc.enabled() {
            return Ok(None);
        }
        let mut client_config = ClientConfig::new(pc.endpoints.iter().map(|e| e.trim()));
        client_config.metrics = Some(client_metrics);
        let client = PlacementClient::new(client_config).map_err(|e| ConfigError::Invalid {
            path: "<config>".into(),
            message: format!("placement.endpoints: {e}"),
        })?;
        let advertise = pc.advertise.clone();
        let info = NodeInfo {
            kind: KIND.into(),
            id: config.node_id,
            grpc: advertise.clone().unwrap_or_else(|| grpc.to_string()),
            metrics: metrics.map(|m| published_metrics(advertise.as_deref(), m)),
            mqtt: None,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        Ok(Some(Self {
            client,
            info,
            ttl_secs: pc.lease_ttl_secs,
        }))
    }

    /// Registers in the background until it succeeds, then marks `readiness` ready
    /// (keep it not ready until then).
    pub fn start(self, readiness: Readiness) -> Joining {
        readiness.set_not_ready("registering in the placement center");
        let task = tokio::spawn(register(self, readiness.clone()));
        Joining { task, readiness }
    }
}

/// The metrics address others can reach: an unspecified host (0.0.0.0) is replaced by the
/// advertised gRPC host.
fn published_metrics(advertise: Option<&str>, metrics: SocketAddr) -> String {
    match advertise.and_then(|a| a.rsplit_once(':')) {
        Some((host, _)) if metrics.ip().is_unspecified() => format!("{host}:{}", metrics.port()),
        _ => metrics.to_string(),
    }
}

async fn register(m: Membership, readiness: Readiness) -> Registration {
    let mut backoff = RETRY_MIN;
    loop {
        match m.client.register(m.info.clone(), m.ttl_secs).await {
            Ok(registration) => {
                tracing::info!(
                    node_id = m.info.id,
                    epoch = registration.epoch(),
                    grpc = %m.info.grpc,
                    "registered in the placement center"
                );
                readiness.set_ready(true);
                return registration;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot register in the placement center yet");
                readiness.set_not_ready(format!("registering in the placement center: {e}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The registration, in progress or done (it is kept alive while this lives).
pub struct Joining {
    task: JoinHandle<Registration>,
    readiness: Readiness,
}

impl Joining {
    /// Stops registering, turns not ready, and deregisters if registered (best effort).
    pub async fn leave(self) {
        self.task.abort();
        let registration = self.task.await.ok();
        self.readiness.set_not_ready("shutting down");
        let Some(registration) = registration else {
            return;
        };
        match tokio::time::timeout(DEREGISTER_TIMEOUT, registration.deregister()).await {
            Ok(Ok(())) => tracing::info!("deregistered from the placement center"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "deregistering failed; the lease will expire")
            }
            Err(_) => tracing::warn!("deregistering timed out; the lease will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_metrics_address() {
        let any: SocketAddr = "0.0.0.0:9181".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9181".parse().unwrap();
        assert_eq!(published_metrics(Some("j-0.j:2228"), any), "j-0.j:9181");
        assert_eq!(
            published_metrics(Some("[fd00::1]:2228"), any),
            "[fd00::1]:9181"
        );
        assert_eq!(
            published_metrics(Some("j-0.j:2228"), local),
            "127.0.0.1:9181"
        );
        assert_eq!(published_metrics(None, any), "0.0.0.0:9181");
    }

    #[tokio::test]
    async fn disabled_without_endpoints_and_bad_endpoints_are_config_errors() {
        let mut c = JournalConfig::default();
        let metrics = GrpcClientMetrics::register(&mut Default::default());
        let grpc = c.listen;
        assert!(Membership::new(&c, grpc, None, metrics.clone())
            .unwrap()
            .is_none());
        c.placement.endpoints = vec!["bad host:1".into()];
        let err = Membership::new(&c, grpc, None, metrics.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("placement.endpoints"), "{err}");
        c.placement.endpoints = vec!["127.0.0.1:1228".into()];
        let m = Membership::new(&c, grpc, c.metrics_listen, metrics)
            .unwrap()
            .unwrap();
        assert_eq!(m.info.kind, "journal");
        assert_eq!(m.info.grpc, "127.0.0.1:2228");
        assert_eq!(m.info.metrics.as_deref(), Some("127.0.0.1:9181"));
    }
}
