//! The cluster's processes' health: waiting for `/readyz` while starting, and noticing
//! later that a process exited without being asked to.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{LocalCluster, LOG_TAIL_LINES};
use crate::error::{Error, Result};
use crate::probe;

/// Time between two rounds of `/readyz` probes while waiting.
const READY_POLL: Duration = Duration::from_millis(100);

/// A process that exited without being asked to.
#[derive(Debug, Clone)]
pub struct Exited {
    /// The process name.
    pub name: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Its log file.
    pub log: PathBuf,
    /// The end of its log.
    pub tail: String,
}

impl LocalCluster {
    /// The processes that exited since the last call without being asked to; each is
    /// reported once (and then counts as not running).
    pub fn reap_exited(&mut self) -> Result<Vec<Exited>> {
        let mut exited = Vec::new();
        for m in &mut self.procs {
            let Some(child) = m.child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_exit()? {
                exited.push(Exited {
                    name: m.spec.name.clone(),
                    status,
                    log: m.spec.log.clone(),
                    tail: child.log_tail(LOG_TAIL_LINES),
                });
                m.child = None;
            }
        }
        Ok(exited)
    }

    /// Polls `/readyz` of the processes `idx` until all answer 200, one exits, or
    /// `ready_timeout` passes.
    pub(super) async fn wait_ready(&mut self, idx: &[usize]) -> Result<()> {
        let deadline = Instant::now() + self.plan.ready_timeout;
        let mut pending = idx.to_vec();
        loop {
            for &i in &pending {
                let m = &mut self.procs[i];
                let Some(child) = m.child.as_mut() else {
                    continue;
                };
                if let Some(status) = child.try_exit()? {
                    return Err(Error::ExitedEarly {
                        name: m.spec.name.clone(),
                        status,
                        log: m.spec.log.clone(),
                        tail: child.log_tail(LOG_TAIL_LINES),
                    });
                }
            }
            let probes = pending
                .iter()
                .map(|&i| probe::readyz(self.procs[i].node.metrics));
            let answers = futures::future::join_all(probes).await;
            let not_ready: Vec<(usize, String)> = pending
                .iter()
                .zip(answers)
                .filter_map(|(&i, answer)| answer.err().map(|reason| (i, reason)))
                .collect();
            let Some((first, last)) = not_ready.first().cloned() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let m = &self.procs[first];
                return Err(Error::NotReady {
                    name: m.spec.name.clone(),
                    timeout: self.plan.ready_timeout,
                    last,
                    log: m.spec.log.clone(),
                    tail: crate::process::log_tail(&m.spec.log, LOG_TAIL_LINES),
                });
            }
            pending = not_ready.into_iter().map(|(i, _)| i).collect();
            tokio::time::sleep(READY_POLL).await;
        }
    }
}
