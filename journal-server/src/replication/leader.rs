//! Leader side: serving followers' fetches (long polls that also carry their
//! acknowledgements) and the periodic ISR and quorum upkeep.

use std::time::{Duration, Instant};

use robustmq_proto::journal::{FetchRequest, FetchResponse, FetchStatus};

use super::state::Role;
use super::Replica;
use crate::error::{JournalError, Result};

impl Replica {
    /// Answers a follower's fetch: checks epochs and divergence, records its progress
    /// (which may commit records), waits up to `max_wait_ms` when there is nothing new,
    /// then ships whole durable batches from its fetch offset.
    pub async fn handle_fetch(&self, req: FetchRequest) -> Result<FetchResponse> {
        let now = Instant::now();
        let mut resp = FetchResponse {
            log_start_offset: self.log.start_offset(),
            ..Default::default()
        };
        let (epoch, epoch_start) = {
            let mut st = self.lock();
            resp.epoch = st.epoch;
            resp.leader_id = st.leader.unwrap_or(0);
            if req.epoch > st.epoch {
                // The follower knows a newer epoch: this leader is stale.
                st.observe_epoch(req.epoch, now);
                self.persist(&st)?;
                self.publish(&st);
                resp.status = FetchStatus::FetchFenced as i32;
                resp.epoch = st.epoch;
                return Ok(resp);
            }
            if !st.is_leader() {
                resp.status = FetchStatus::FetchNotLeader as i32;
                return Ok(resp);
            }
            let leader_end = self.writer.durable_end();
            let (f, le) = (req.fetch_offset, req.last_fetched_epoch);
            let diverging = if le > 0 {
                let (found, end) = self.log.end_offset_for_epoch(le);
                (found != le || end < f).then_some((found, end.min(f)))
            } else {
                (f > leader_end).then_some((0, leader_end))
            };
            if let Some((e, end)) = diverging {
                resp.status = FetchStatus::FetchDiverging as i32;
                resp.diverging_epoch = e;
                resp.diverging_end_offset = end;
                return Ok(resp);
            }
            if f < resp.log_start_offset {
                resp.status = FetchStatus::FetchOffsetOutOfRange as i32;
                return Ok(resp);
            }
            if st.on_follower_fetch(req.follower_id, f, le, leader_end, now) {
                self.publish(&st);
            }
            let epoch_start = st.leader_state.as_ref().map_or(0, |l| l.epoch_start);
            (st.epoch, epoch_start)
        };
        resp.epoch_start_offset = epoch_start;

        // Long poll: nothing to send and nothing new to tell. A newer HW counts as news:
        // followers serve reads up to the HW they know, so they should learn it promptly.
        let mut end_rx = self.writer.watch_end();
        let mut view_rx = self.subscribe();
        let idle = |end: u64, hw: u64| end <= req.fetch_offset && hw <= req.follower_high_watermark;
        if idle(*end_rx.borrow_and_update(), view_rx.borrow_and_update().hw) {
            let max_wait =
                Duration::from_millis(u64::from(req.max_wait_ms)).min(self.config.fetch_max_wait());
            let _ = tokio::time::timeout(max_wait, async {
                loop {
                    tokio::select! {
                        r = end_rx.changed() => if r.is_err() { return },
                        r = view_rx.changed() => if r.is_err() { return },
                    }
                    let v = view_rx.borrow_and_update().clone();
                    if v.epoch != epoch
                        || v.role != Role::Leader
                        || !idle(*end_rx.borrow_and_update(), v.hw)
                    {
                        return;
                    }
                }
            })
            .await;
        }

        let view = self.view();
        if view.epoch != epoch || view.role != Role::Leader {
            resp.status = FetchStatus::FetchNotLeader as i32;
            resp.epoch = view.epoch;
            resp.leader_id = view.leader.unwrap_or(0);
            return Ok(resp);
        }
        // Ship only what is durable here: a follower must never hold a record the leader
        // could still lose in a crash (it might be elected and commit it).
        let limit = self.writer.durable_end();
        if req.fetch_offset < limit {
            let max_bytes = (req.max_bytes.max(1)).min(self.config.fetch_max_bytes) as usize;
            let (log, from) = (self.log.clone(), req.fetch_offset);
            let batches = tokio::task::spawn_blocking(move || log.read_raw(from, max_bytes, limit))
                .await
                .map_err(|e| JournalError::Unavailable(format!("fetch read failed: {e}")))??;
            resp.batches = batches.to_vec();
        }
        resp.high_watermark = view.hw;
        resp.status = FetchStatus::FetchOk as i32;
        Ok(resp)
    }

    /// Periodic leader upkeep: drop lagging followers from the ISR (which may commit
    /// what only they were holding up), step down without a live majority, and announce
    /// the leadership to replicas that are not fetching.
    pub(super) fn leader_tick(&self) {
        let now = Instant::now();
        let idle: Vec<_> = {
            let mut st = self.lock();
            if !st.is_leader() {
                return;
            }
            let removed = st.shrink_isr(now, self.config.replica_lag_max());
            if !removed.is_empty() {
                tracing::warn!(shard = %self.shard, followers = ?removed, "followers left the ISR (lagging)");
                self.metrics.isr_shrinks.inc_by(removed.len() as u64);
            }
            let moved = st.advance_hw(self.writer.durable_end());
            if !st.has_quorum(now, self.config.election_timeout()) {
                tracing::warn!(shard = %self.shard, epoch = st.epoch, "leader lost contact with a majority; stepping down");
                st.step_down(now);
                self.publish(&st);
                return;
            }
            if moved || !removed.is_empty() {
                self.publish(&st);
            }
            let quiet = self.config.fetch_max_wait() * 2;
            let epoch = st.epoch;
            let mut idle = Vec::new();
            if let Some(ls) = st.leader_state.as_mut() {
                for (id, p) in ls.followers.iter_mut() {
                    if now.duration_since(p.last_fetch) > quiet
                        && now.duration_since(p.last_announced) > quiet
                    {
                        p.last_announced = now;
                        idle.push((*id, epoch));
                    }
                }
            }
            idle
        };
        for (id, epoch) in idle {
            self.spawn_announce(id, epoch);
        }
    }
}
