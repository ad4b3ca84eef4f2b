//! Making a placement-center write visible cluster-wide before the client hears back.
//!
//! Every broker applies the route table and retained messages from a watch, a moment
//! after they are committed. A broker that wrote a route (for a SUBSCRIBE) or a retained
//! message asks each peer to wait until its copy has that revision (`AwaitMirror`), so a
//! message published on any broker after the SUBACK finds the route, and a subscriber
//! on any broker after the PUBACK gets the retained message. A peer that does not
//! answer in time (dead, partitioned) is logged and does not hold the client up further.

use std::time::Duration;

use pb::await_mirror_request::Mirror;
use robustmq_proto::broker as pb;

use super::forward::Peers;

/// How long a peer may take to catch up before the client is answered anyway.
pub const PEER_WAIT: Duration = Duration::from_secs(3);

/// Waits until every peer's `mirror` has applied `revision` (or [`PEER_WAIT`] passed).
pub async fn await_peers(peers: &Peers, mirror: Mirror, revision: i64) {
    let calls = peers
        .clients()
        .into_iter()
        .map(|(node, mut client)| async move {
            let request = pb::AwaitMirrorRequest {
                mirror: mirror as i32,
                revision,
                timeout_ms: PEER_WAIT.as_millis() as u32,
            };
            let answer = tokio::time::timeout(PEER_WAIT, client.await_mirror(request)).await;
            match answer {
                Ok(Ok(r)) if r.get_ref().applied >= revision => {}
                Ok(Ok(r)) => tracing::warn!(
                    peer = node,
                    ?mirror,
                    revision,
                    applied = r.get_ref().applied,
                    "peer has not applied the change yet; answering the client anyway"
                ),
                Ok(Err(status)) => tracing::warn!(
                    peer = node, ?mirror, revision, error = %status.message(),
                    "peer did not confirm the change"
                ),
                Err(_) => tracing::warn!(
                    peer = node,
                    ?mirror,
                    revision,
                    "peer did not confirm the change in time"
                ),
            }
        });
    futures::future::join_all(calls).await;
}
