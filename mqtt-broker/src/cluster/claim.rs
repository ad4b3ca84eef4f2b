//! Claiming a client's session for this node when the client connects here: taken over
//! from the live broker that owned it, or read from the session log of one that is gone.

use std::time::Duration;

use robustmq_proto::broker as broker_pb;

use super::{sessions, Cluster};

impl Cluster {
    /// Claims `client_id`'s session for this node (a client just connected here). When
    /// another live broker owned it, that broker disconnects the client and hands the
    /// session over; its state is returned unless `clean_start` discarded it.
    pub async fn claim_session(
        &self,
        client_id: &str,
        clean_start: bool,
    ) -> Result<Option<broker_pb::SessionState>, String> {
        let me = self.as_owner();
        let mut state = None;
        for _ in 0..5 {
            let (revision, owner) = sessions::read_owner(&self.client, client_id)
                .await
                .map_err(|e| e.to_string())?;
            let me_now = (self.node_id, self.epoch());
            let mut orphaned = None;
            if let Some(owner) = owner.filter(|o| (o.node, o.epoch) != me_now) {
                match self.take_from(&owner, client_id, clean_start).await? {
                    Handover::Taken(Some(taken)) => state = Some(taken),
                    Handover::Taken(None) => {}
                    Handover::Gone(recovered) => orphaned = Some((owner, recovered)),
                }
            }
            if sessions::write_owner(&self.client, client_id, revision, &me)
                .await
                .map_err(|e| e.to_string())?
            {
                if let Some((owner, recovered)) = orphaned {
                    // Ours now: nobody else recovers it from that log.
                    if recovered.is_some() {
                        self.release_recovered(&owner, client_id).await;
                        state = recovered;
                    }
                }
                return Ok(state);
            }
            // Another broker claimed it in between: ask that one next.
        }
        Err(format!("ownership of session {client_id:?} kept changing"))
    }

    /// Asks `owner` to hand `client_id`'s session over. When the owner is gone (its
    /// registration expired, or it is an earlier incarnation of this node), the session
    /// is read from its session log instead, to be taken once claimed. An owner that is
    /// still registered but does not answer is asked again until it answers or its
    /// lease expires. `Err` when the session log holding the session cannot be read (the
    /// client should try again later).
    async fn take_from(
        &self,
        owner: &broker_pb::SessionOwner,
        client_id: &str,
        clean_start: bool,
    ) -> Result<Handover, String> {
        let request = broker_pb::TakeSessionRequest {
            from_node: self.node_id,
            epoch: self.epoch(),
            client_id: client_id.to_owned(),
            clean_start,
        };
        // Longer than a dead owner's lease takes to expire.
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.config.lease_ttl_secs.max(1) as u64 * 2 + 2);
        loop {
            let peer = (owner.node != self.node_id)
                .then(|| self.peers.client(owner.node, owner.epoch))
                .flatten();
            let Some(mut peer) = peer else {
                return Ok(Handover::Gone(
                    self.read_orphan(owner, client_id, clean_start).await?,
                ));
            };
            match peer.take_session(request.clone()).await {
                Ok(response) => return Ok(Handover::Taken(response.into_inner().session)),
                Err(status) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(client_id, owner = owner.node, error = %status.message(), "session hand-over failed; starting without it");
                    return Ok(Handover::Taken(None));
                }
                Err(status) => {
                    tracing::debug!(client_id, owner = owner.node, error = %status.message(), "session owner does not answer; waiting for it or its lease");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Reads the session of `client_id` from the session log of `owner`, a broker
    /// incarnation that is gone.
    pub(super) async fn read_orphan(
        &self,
        owner: &broker_pb::SessionOwner,
        client_id: &str,
        clean_start: bool,
    ) -> Result<Option<broker_pb::SessionState>, String> {
        let Some(log) = self.log.as_ref().filter(|_| !clean_start) else {
            if !clean_start {
                tracing::info!(
                    client_id,
                    owner = owner.node,
                    "previous session owner is gone and durability is off; its session is lost"
                );
            }
            return Ok(None);
        };
        let state = log.recover(owner.node, client_id).await.map_err(|e| {
            tracing::error!(client_id, owner = owner.node, error = %e, "session could not be read from the session log");
            format!("reading the session from node {}'s session log: {e}", owner.node)
        })?;
        tracing::info!(
            client_id,
            owner = owner.node,
            found = state.is_some(),
            queued = state.as_ref().map_or(0, |s| s.queue.len()),
            "session of a broker that is gone read from its session log"
        );
        Ok(state)
    }

    /// Marks a session this node recovered as ended in the dead owner's log.
    pub(super) async fn release_recovered(&self, owner: &broker_pb::SessionOwner, client_id: &str) {
        if let Some(log) = &self.log {
            if let Err(e) = log.release(owner.node, client_id).await {
                tracing::warn!(client_id, owner = owner.node, error = %e, "recovered session not marked ended in its old log");
            }
        }
    }
}

/// What became of a session's previous owner when a CONNECT claimed it.
enum Handover {
    /// The live owner handed the session over (`None`: it had none, or clean start).
    Taken(Option<broker_pb::SessionState>),
    /// The owner is gone; its session as its session log holds it.
    Gone(Option<broker_pb::SessionState>),
}
