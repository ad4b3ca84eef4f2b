//! Leader election among a shard's replicas: a pre-vote round (so a node that was cut
//! off cannot bump the epoch and depose a healthy leader when it comes back), then a
//! persisted vote; the winner records its epoch start through the writer and announces
//! itself.

use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use robustmq_proto::journal::{AnnounceRequest, AnnounceResponse, VoteRequest, VoteResponse};

use super::state::{LogPosition, Role};
use super::Replica;
use crate::config::NodeId;
use crate::error::Result;

impl Replica {
    /// This replica's log position for votes: last epoch and durable end.
    fn position(&self) -> LogPosition {
        LogPosition {
            last_epoch: self.log.last_epoch(),
            end_offset: self.writer.durable_end(),
        }
    }

    /// Runs one election attempt: pre-vote, vote, and on a majority, leadership.
    pub(super) async fn campaign(&self) -> Result<()> {
        let _one_at_a_time = self.campaigning.lock().await;
        let (epoch, peers, majority) = {
            let st = self.lock();
            if st.is_leader() {
                return Ok(());
            }
            (st.epoch + 1, st.peers().collect::<Vec<_>>(), st.majority())
        };
        let position = self.position();
        if self.collect_votes(&peers, epoch, position, true).await + 1 < majority {
            tracing::debug!(shard = %self.shard, epoch, "pre-vote failed");
            self.restart_election_clock();
            return Ok(());
        }
        {
            let mut st = self.lock();
            if st.epoch >= epoch || st.is_leader() {
                return Ok(()); // someone else moved on meanwhile
            }
            st.epoch = epoch;
            st.voted_for = self.node_id;
            st.role = Role::Candidate;
            st.leader = None;
            st.last_leader_contact = Instant::now();
            self.persist(&st)?;
            self.publish(&st);
        }
        let granted = self.collect_votes(&peers, epoch, position, false).await + 1;
        if granted < majority {
            tracing::info!(shard = %self.shard, epoch, granted, majority, "election lost");
            let mut st = self.lock();
            if st.epoch == epoch && st.role == Role::Candidate {
                st.step_down(Instant::now());
                self.publish(&st);
            }
            return Ok(());
        }
        // Record the epoch start in the log's order (after anything queued), then lead.
        let start = self.writer.begin_epoch(epoch).await?;
        let mut st = self.lock();
        if st.epoch != epoch || st.role != Role::Candidate {
            self.publish(&st); // closes the fence the writer just opened
            return Ok(());
        }
        st.become_leader(start, self.writer.durable_end(), Instant::now());
        self.metrics.elections_won.inc();
        tracing::info!(shard = %self.shard, epoch, epoch_start = start, votes = granted, "became leader");
        self.publish(&st);
        let peers: Vec<_> = st.peers().collect();
        drop(st);
        for id in peers {
            self.spawn_announce(id, epoch);
        }
        Ok(())
    }

    /// Sends vote requests to `peers` at once; counts the grants. A newer epoch in an
    /// answer ends the candidacy.
    async fn collect_votes(
        &self,
        peers: &[NodeId],
        epoch: u64,
        position: LogPosition,
        pre_vote: bool,
    ) -> usize {
        let calls = peers.iter().map(|&id| {
            let req = VoteRequest {
                shard: self.shard.clone(),
                candidate_id: self.node_id,
                epoch,
                last_epoch: position.last_epoch,
                log_end_offset: position.end_offset,
                pre_vote,
            };
            let client = self.peers.client(id);
            let timeout = self.config.peer_timeout();
            async move {
                let mut client = client?;
                let resp = tokio::time::timeout(timeout, client.request_vote(req))
                    .await
                    .ok()?
                    .ok()?;
                Some(resp.into_inner())
            }
        });
        // Stop as soon as the outcome is known: a majority of grants (a black-holed peer
        // would otherwise cost a whole peer timeout) or a newer epoch.
        let needed = self.lock().majority().saturating_sub(1);
        let mut pending: FuturesUnordered<_> = calls.collect();
        let (mut granted, mut newer) = (0, 0);
        while let Some(answer) = pending.next().await {
            let Some(a) = answer else { continue };
            newer = newer.max(a.epoch);
            granted += usize::from(a.granted);
            if granted >= needed || newer > epoch {
                break;
            }
        }
        if newer > epoch {
            let mut st = self.lock();
            if st.observe_epoch(newer, Instant::now()) {
                let _ = self.persist(&st);
                self.publish(&st);
            }
            return 0;
        }
        granted
    }

    pub(super) fn restart_election_clock(&self) {
        let mut st = self.lock();
        if !st.is_leader() {
            st.last_leader_contact = Instant::now();
        }
    }

    /// Answers a (pre-)vote request.
    pub fn handle_vote(&self, req: VoteRequest) -> Result<VoteResponse> {
        let now = Instant::now();
        let mine = self.position();
        let candidate = LogPosition {
            last_epoch: req.last_epoch,
            end_offset: req.log_end_offset,
        };
        let mut st = self.lock();
        let would = st.would_vote(
            req.candidate_id,
            req.epoch,
            candidate,
            mine,
            now,
            self.config.election_timeout(),
        );
        let granted = if req.pre_vote || !would {
            would
        } else {
            st.observe_epoch(req.epoch, now);
            if st.voted_for == 0 || st.voted_for == req.candidate_id {
                st.voted_for = req.candidate_id;
                // Granting a vote restarts our own election clock (as in Raft).
                st.last_leader_contact = now;
                self.persist(&st)?;
                self.publish(&st);
                true
            } else {
                false
            }
        };
        tracing::debug!(shard = %self.shard, candidate = req.candidate_id, epoch = req.epoch, pre_vote = req.pre_vote, granted, "vote request");
        Ok(VoteResponse {
            granted,
            epoch: st.epoch,
            leader_id: st.leader.unwrap_or(0),
        })
    }

    /// Accepts a leader's announcement for the current or a newer epoch.
    pub fn handle_announce(&self, req: AnnounceRequest) -> Result<AnnounceResponse> {
        let now = Instant::now();
        let mut st = self.lock();
        if req.epoch < st.epoch || (req.epoch == st.epoch && st.is_leader()) {
            return Ok(AnnounceResponse {
                accepted: false,
                epoch: st.epoch,
            });
        }
        if st.observe_epoch(req.epoch, now) {
            self.persist(&st)?;
        }
        st.follow(req.leader_id, now);
        self.publish(&st);
        Ok(AnnounceResponse {
            accepted: true,
            epoch: st.epoch,
        })
    }

    /// Tells node `id` (in the background) that this node leads `epoch`.
    pub(super) fn spawn_announce(&self, id: NodeId, epoch: u64) {
        let Some(mut client) = self.peers.client(id) else {
            return;
        };
        let req = AnnounceRequest {
            shard: self.shard.clone(),
            leader_id: self.node_id,
            epoch,
        };
        let timeout = self.config.peer_timeout();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, client.announce(req)).await;
        });
    }
}
