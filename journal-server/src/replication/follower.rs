//! Follower side: one fetch at a time from the leader. The fetch offset is the durable
//! log end, so each fetch also acknowledges everything before it; answers are appended
//! (and synced) before the next fetch goes out.

use std::time::Instant;

use bytes::Bytes;
use robustmq_proto::journal::{FetchRequest, FetchResponse, FetchStatus};

use super::Replica;
use crate::config::NodeId;
use crate::error::{JournalError, Result};

impl Replica {
    /// One fetch round trip with `leader` and what follows from the answer.
    pub(super) async fn fetch_from(&self, leader: NodeId) -> Result<()> {
        let (epoch, hw) = {
            let st = self.lock();
            (st.epoch, st.hw)
        };
        let req = FetchRequest {
            shard: self.shard.clone(),
            follower_id: self.node_id,
            epoch,
            fetch_offset: self.writer.durable_end(),
            last_fetched_epoch: self.log.last_epoch(),
            max_bytes: self.config.fetch_max_bytes,
            max_wait_ms: self.config.fetch_max_wait_ms as u32,
            follower_high_watermark: hw,
        };
        let mut client = self
            .peers
            .client(leader)
            .ok_or_else(|| JournalError::Unavailable(format!("no address for node {leader}")))?;
        let resp = client
            .fetch(req)
            .await
            .map_err(|s| {
                JournalError::Unavailable(format!("fetch from node {leader}: {}", s.message()))
            })?
            .into_inner();
        self.apply_fetch(leader, epoch, resp).await
    }

    async fn apply_fetch(
        &self,
        leader: NodeId,
        sent_epoch: u64,
        resp: FetchResponse,
    ) -> Result<()> {
        let now = Instant::now();
        let status = FetchStatus::try_from(resp.status).unwrap_or(FetchStatus::FetchNotLeader);
        {
            let mut st = self.lock();
            if resp.epoch > st.epoch {
                st.observe_epoch(resp.epoch, now);
                self.persist(&st)?;
            } else if resp.epoch < st.epoch || st.epoch != sent_epoch {
                // An answer from an older epoch (or ours moved meanwhile, e.g. we voted in
                // a newer election): appending it could resurrect a deposed leader's tail.
                if status == FetchStatus::FetchOk && st.leader == Some(leader) {
                    st.leader = None;
                    self.publish(&st);
                }
                return Ok(());
            }
            match status {
                FetchStatus::FetchOk => st.follow(leader, now),
                FetchStatus::FetchNotLeader | FetchStatus::FetchFenced => {
                    let hint = resp.leader_id;
                    if hint != 0 && hint != leader && hint != self.node_id && resp.epoch == st.epoch
                    {
                        st.follow(hint, now);
                    } else if st.leader == Some(leader) {
                        st.leader = None;
                    }
                    self.publish(&st);
                    return Ok(());
                }
                FetchStatus::FetchDiverging | FetchStatus::FetchOffsetOutOfRange => {
                    st.follow(leader, now)
                }
            }
            self.publish(&st);
        }
        match status {
            FetchStatus::FetchOk => self.apply_batches(resp).await,
            FetchStatus::FetchDiverging => {
                // Truncate to where both logs agree: the leader's end of the epoch, and
                // our own end of that epoch (Kafka's KIP-101/279 rule), never past our end.
                let (_, own_end) = self.log.end_offset_for_epoch(resp.diverging_epoch);
                let target = resp
                    .diverging_end_offset
                    .min(own_end)
                    .min(self.writer.durable_end());
                tracing::warn!(shard = %self.shard, to = target, leader_epoch = resp.epoch, "log diverges from the leader; truncating");
                let end = if target < self.log.start_offset() {
                    self.writer.reset(resp.log_start_offset).await?
                } else {
                    self.writer.truncate(target).await?
                };
                self.metrics.truncations.inc();
                self.clamp_hw(end);
                Ok(())
            }
            FetchStatus::FetchOffsetOutOfRange => {
                tracing::warn!(shard = %self.shard, start = resp.log_start_offset, "behind the leader's retention; restarting the log at its start");
                let end = self.writer.reset(resp.log_start_offset).await?;
                self.clamp_hw(end);
                Ok(())
            }
            FetchStatus::FetchNotLeader | FetchStatus::FetchFenced => Ok(()),
        }
    }

    async fn apply_batches(&self, resp: FetchResponse) -> Result<()> {
        let needs_epoch_mark = self.writer.durable_end() >= resp.epoch_start_offset
            && self.log.last_epoch() < resp.epoch;
        let end = if !resp.batches.is_empty() || needs_epoch_mark {
            let bytes = resp.batches.len() as u64;
            let end = self
                .writer
                .append_raw(
                    Bytes::from(resp.batches),
                    resp.epoch,
                    resp.epoch_start_offset,
                )
                .await?;
            self.metrics.bytes_replicated.inc_by(bytes);
            end
        } else {
            self.writer.durable_end()
        };
        let mut st = self.lock();
        let hw = resp.high_watermark.min(end);
        if hw > st.hw {
            st.hw = hw;
            self.publish(&st);
        }
        Ok(())
    }

    fn clamp_hw(&self, end: u64) {
        let mut st = self.lock();
        if st.hw > end {
            st.hw = end;
            self.publish(&st);
        }
    }
}
