//! The shutdown signal every service binary waits for. It lives here because this is
//! the crate all services share, and shutdown is when telemetry must be flushed.

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
///
/// # Panics
/// If the SIGTERM handler cannot be installed (no signal support in the runtime), which
/// a service cannot run correctly without.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
