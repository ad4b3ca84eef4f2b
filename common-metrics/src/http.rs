//! The metrics port: `/metrics`, `/healthz` and `/readyz` over HTTP/1.1 (axum).
//!
//! `/healthz` answers as long as the process serves HTTP (Kubernetes liveness: restart
//! me if this stops). `/readyz` reflects a [`Readiness`] handle the service flips once it
//! can do its job (joined the cluster, has a leader), so Kubernetes only routes traffic to
//! ready pods and a rolling update waits for them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::exposition::{encode_registry, Format};

/// The service's readiness, shared between the service and the HTTP server. Cloning
/// yields another handle to the same state.
#[derive(Clone, Debug)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    /// Read on every probe; an atomic keeps probes off the reason lock.
    ready: AtomicBool,
    /// Why the service is not ready, shown in the 503 body for whoever debugs a stuck pod.
    reason: Mutex<String>,
}

impl Readiness {
    /// A handle that starts not ready, with reason "starting".
    pub fn new() -> Self {
        Readiness {
            inner: Arc::new(ReadinessInner {
                ready: AtomicBool::new(false),
                reason: Mutex::new("starting".to_owned()),
            }),
        }
    }

    /// Marks the service ready (`true`) or not ready with a generic reason (`false`).
    pub fn set_ready(&self, ready: bool) {
        if ready {
            self.set_reason(String::new());
            self.inner.ready.store(true, Ordering::Release);
        } else {
            self.set_not_ready("not ready");
        }
    }

    /// Marks the service not ready, saying why (e.g. "no raft leader", "draining").
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.inner.ready.store(false, Ordering::Release);
        self.set_reason(reason.into());
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Why the service is not ready; empty when ready.
    pub fn reason(&self) -> String {
        self.inner
            .reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    fn set_reason(&self, reason: String) {
        if let Ok(mut slot) = self.inner.reason.lock() {
            *slot = reason;
        }
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The router, for services that want to nest it in their own axum app.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            registry,
            readiness,
        })
}

/// Serves the metrics port on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry, readiness))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match encode_registry(&state.registry, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => {
            // Only a collector's own formatting error lands here; say so instead of
            // serving a half-written exposition that Prometheus would reject anyway.
            tracing::error!("encoding the metrics registry failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let reason = state.readiness.reason();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_flips_and_keeps_reason() {
        let readiness = Readiness::new();
        let probe = readiness.clone();
        assert!(!probe.is_ready());
        assert_eq!(probe.reason(), "starting");
        readiness.set_ready(true);
        assert!(probe.is_ready());
        assert_eq!(probe.reason(), "");
        readiness.set_not_ready("no raft leader");
        assert!(!probe.is_ready());
        assert_eq!(probe.reason(), "no raft leader");
    }
}
