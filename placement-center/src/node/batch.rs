//! The two batchers behind [`Core`](super::Core): proposals (many client writes per log
//! entry) and read-index rounds (one leadership check for many reads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::kv::{Command, CommandResponse};
use crate::node::core::write_error;
use crate::node::metrics::{ProposalMetrics, ProposalResult};
use crate::raft::Raft;

/// A client command waiting for its batch to be applied.
pub(crate) struct Proposal {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<CommandResponse>>,
    pub(crate) start: Instant,
}

/// Where a read-index round sends its answer.
pub(crate) type ReadReply = oneshot::Sender<Result<u64>>;

/// Batches concurrent proposals into one log entry each round. At most a few rounds are in
/// flight; while they are, new proposals queue up and form the next, larger batch. A
/// round not applied within `timeout` (a leader cut off from its quorum) fails with
/// UNAVAILABLE, so it cannot hold its slot forever.
pub(crate) async fn run_proposer(
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    max_batch: usize,
    metrics: ProposalMetrics,
    timeout: Duration,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(4));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (commands, waiters): (Vec<Command>, Vec<_>) = batch
                .into_iter()
                .map(|p| (p.command, (p.reply, p.start)))
                .unzip();
            let command = if commands.len() == 1 {
                commands.into_iter().next().expect("one command")
            } else {
                Command::Batch(commands)
            };
            let written = tokio::time::timeout(timeout, raft.client_write(command)).await;
            // A batch fails as a whole; applied commands succeed or are refused one by one.
            let failure = match &written {
                Err(_) => Some(ProposalResult::timeout),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    Some(ProposalResult::not_leader)
                }
                Ok(Err(_)) => Some(ProposalResult::error),
                Ok(Ok(_)) => None,
            };
            let results: Vec<Result<CommandResponse>> = match written {
                Err(_) => waiters
                    .iter()
                    .map(|_| {
                        Err(Error::Unavailable(
                            "the write was not committed within the request timeout".into(),
                        ))
                    })
                    .collect(),
                Ok(Ok(resp)) => match resp.data {
                    CommandResponse::Batch(list) if waiters.len() > 1 => {
                        list.into_iter().map(single).collect()
                    }
                    other => vec![single(other)],
                },
                Ok(Err(e)) => {
                    let e = write_error(e);
                    waiters.iter().map(|_| Err(e.duplicate())).collect()
                }
            };
            for ((reply, start), result) in waiters.into_iter().zip(results) {
                metrics.latency.observe_duration(start);
                metrics.count(failure.unwrap_or(if result.is_ok() {
                    ProposalResult::ok
                } else {
                    ProposalResult::refused
                }));
                let _ = reply.send(result);
            }
        });
    }
}

/// One command's result: a state-machine refusal becomes an error.
fn single(resp: CommandResponse) -> Result<CommandResponse> {
    match resp {
        CommandResponse::Error(e) => Err(e.into()),
        other => Ok(other),
    }
}

/// Serves read-index requests in rounds: every request that arrived before a round starts
/// shares that round's leadership check.
pub(crate) async fn run_read_index(
    raft: Raft,
    mut rx: mpsc::Receiver<ReadReply>,
    timeout: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let result = match tokio::time::timeout(timeout, raft.get_read_log_id()).await {
            Err(_) => Err(Error::Unavailable(
                "leadership not confirmed within the request timeout".into(),
            )),
            Ok(r) => match r {
                Ok((read_log_id, _applied)) => Ok(read_log_id.map_or(0, |l| l.index)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    Err(Error::NotLeader(f.leader_id))
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => Err(
                    Error::Unavailable(format!("leadership not confirmed by a quorum: {q}")),
                ),
                Err(RaftError::Fatal(f)) => Err(Error::Unavailable(format!("raft stopped: {f}"))),
            },
        };
        for w in waiters {
            let _ = w.send(match &result {
                Ok(i) => Ok(*i),
                Err(e) => Err(e.duplicate()),
            });
        }
    }
}
