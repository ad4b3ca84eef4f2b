//! Keeping a lease alive from the background, across member failures.

use std::time::Duration;

use futures::SinkExt;
use robustmq_proto::placement as pb;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::PlacementClient;

/// Renews a lease every third of its TTL until dropped. Dropping it stops the renewals
/// (the lease then expires on its own; revoke it to delete its keys at once).
pub struct LeaseKeeper {
    id: i64,
    alive: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl PlacementClient {
    /// Starts keeping lease `id` (granted with `ttl` seconds) alive.
    pub fn keep_alive(&self, id: i64, ttl: i64) -> LeaseKeeper {
        let (tx, alive) = watch::channel(true);
        let period = Duration::from_millis((ttl.max(1) as u64 * 1000 / 3).max(100));
        let task = tokio::spawn(run(self.clone(), id, period, tx));
        LeaseKeeper { id, alive, task }
    }
}

impl LeaseKeeper {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// False once the server answered that the lease no longer exists.
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// Resolves when the lease is known to be gone (expired or revoked).
    pub async fn expired(&mut self) {
        let _ = self.alive.wait_for(|a| !*a).await;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(client: PlacementClient, id: i64, period: Duration, alive: watch::Sender<bool>) {
    let mut attempt = 0usize;
    loop {
        let (mut tx, rx) = futures::channel::mpsc::channel::<pb::LeaseKeepAliveRequest>(4);
        let mut lease = client.lease_client(attempt);
        let opened = async {
            tx.send(pb::LeaseKeepAliveRequest { id }).await.ok();
            lease.lease_keep_alive(rx).await
        };
        if let Ok(resp) = opened.await {
            let mut inbound = resp.into_inner();
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    msg = inbound.message() => match msg {
                        Ok(Some(r)) if r.ttl == 0 => {
                            let _ = alive.send(false);
                            return;
                        }
                        Ok(Some(_)) => attempt = 0,
                        _ => break,
                    },
                    _ = tick.tick() => {
                        if tx.send(pb::LeaseKeepAliveRequest { id }).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100).min(period)).await;
    }
}
