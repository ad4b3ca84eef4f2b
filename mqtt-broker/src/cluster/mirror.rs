//! Keeps a local copy of one key prefix of the placement center: list it, then follow
//! the watch from the revision after the list. A watch that cannot resume (its revision
//! was compacted) lists again. The broker mirrors the route table and the retained
//! messages this way, so no PUBLISH ever waits for the placement center to be asked.

use std::time::Duration;

use placement_client::{pb, PlacementClient};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a mirror feeds its owner.
pub trait Mirror: Send + 'static {
    /// Replaces the whole copy with `kvs` (the prefix as listed at one revision).
    fn reset(&mut self, kvs: Vec<pb::KeyValue>);
    /// Applies one change (a put with its new value, or a delete).
    fn apply(&mut self, event: pb::Event);
}

/// Mirrors `prefix` into `target` until `stop`. `revision` is sent the revision the copy
/// is complete up to, first after the initial list (the caller's "synced" signal).
pub async fn run(
    client: PlacementClient,
    prefix: String,
    mut target: impl Mirror,
    revision: watch::Sender<i64>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listed = tokio::select! {
            r = client.range(prefix.clone(), 0) => r,
            _ = stop.cancelled() => return,
        };
        let listed = match listed {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "cannot list placement-center prefix; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let listed_at = listed.header.map_or(0, |h| h.revision);
        target.reset(listed.kvs);
        revision.send_replace(listed_at);
        let mut stream = match client.watch(prefix.clone(), true, listed_at + 1).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "cannot watch placement-center prefix; listing again");
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                r = stream.next() => r,
                _ = stop.cancelled() => return,
            };
            match next {
                Ok(resp) => {
                    // Event revisions, not the header's: the header may be ahead of
                    // what this prefix has delivered so far.
                    let mut last = 0;
                    for event in resp.events {
                        last = event.kv.as_ref().map_or(last, |kv| kv.mod_revision);
                        target.apply(event);
                    }
                    let done = last.max(*revision.borrow());
                    revision.send_replace(done);
                }
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "watch ended; listing again");
                    break;
                }
            }
        }
    }
}
