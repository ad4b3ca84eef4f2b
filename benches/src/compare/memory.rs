//! Resident memory per idle connection: VmRSS of the broker before and after opening
//! N connections that then stay idle.

use std::time::Duration;

use mqtt_codec::ProtocolVersion;

use super::brokers::{rss_kib, BrokerProcess};
use crate::client::native::Connection;
use crate::client::ClientOptions;

/// What the idle-connection test measured.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MemoryReport {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// (after - before) / connections, in KiB.
    pub kib_per_connection: f64,
}

/// File descriptors this process needs beyond the connections themselves.
const SPARE_FDS: u64 = 512;

/// Raises this process's open-file limit to its hard limit (children inherit it) and
/// fails clearly when that is still too low for `n` connections.
pub fn ensure_fd_limit(n: usize) -> anyhow::Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    let need = n as u64 + SPARE_FDS;
    if limit < need {
        anyhow::bail!(
            "open-file limit is {limit}, {n} idle connections need about {need}: \
             raise the hard limit (ulimit -Hn, /etc/security/limits.conf or the container's \
             nofile setting) and run again"
        );
    }
    Ok(limit)
}

/// Opens `n` idle MQTT 3.1.1 connections to `broker` and reports its memory growth.
pub async fn idle_connections(broker: &BrokerProcess, n: usize) -> anyhow::Result<MemoryReport> {
    ensure_fd_limit(n)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(broker.pid())?;
    let run = crate::runner::run_id();
    let opts = |i: usize| ClientOptions {
        addr: broker.v4,
        client_id: format!("mqb-{run}-idle{i}"),
        version: ProtocolVersion::V3_1_1,
        clean_start: true,
        session_expiry: 0,
        keep_alive: 600,
        tls: None,
        connect_timeout: Duration::from_secs(30),
    };
    use futures::StreamExt;
    let conns: Vec<_> = futures::stream::iter(0..n)
        .map(|i| async move { Connection::connect(&opts(i)).await })
        .buffer_unordered(128)
        .collect()
        .await;
    let ok: Vec<Connection> = conns
        .into_iter()
        .filter_map(|c| c.ok().map(|(c, _)| c))
        .collect();
    if ok.len() < n {
        let failed = n - ok.len();
        close(ok).await;
        anyhow::bail!("{failed} of {n} idle connections failed");
    }
    // Let the broker settle (allocator, lazily grown buffers).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(broker.pid())?;
    close(ok).await;
    Ok(MemoryReport {
        connections: n,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: after.saturating_sub(before) as f64 / n as f64,
    })
}

async fn close(conns: Vec<Connection>) {
    use futures::StreamExt;
    futures::stream::iter(conns)
        .for_each_concurrent(256, |c| c.disconnect())
        .await;
}
