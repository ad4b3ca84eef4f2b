//! A watch that survives member failures: on a broken stream it reconnects (to the same
//! or another member) from the revision after the last event it delivered, so the caller
//! sees every event once, in revision order.

use std::time::{Duration, Instant};

use robustmq_proto::placement as pb;
use tonic::Streaming;

use crate::client::{retryable, PlacementClient};
use crate::error::{Error, Result};

/// Events of a key or prefix; see [`PlacementClient::watch`].
pub struct WatchStream {
    client: PlacementClient,
    key: Vec<u8>,
    prefix: bool,
    /// The first revision not yet delivered.
    next: i64,
    stream: Option<Streaming<pb::WatchResponse>>,
    attempt: usize,
}

impl PlacementClient {
    /// Watches `key` (or every key under it with `prefix`) from `start_revision`
    /// (0: from the current revision on; negative values are refused by the server).
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        prefix: bool,
        start_revision: i64,
    ) -> Result<WatchStream> {
        let key = key.into();
        let next = if start_revision != 0 {
            start_revision
        } else {
            // Pin "now" to a revision, so that a reconnect does not skip events.
            let probe = pb::RangeRequest {
                prefix: key.clone(),
                limit: 1,
                serializable: false,
                keys_only: true,
            };
            self.range_with(probe)
                .await?
                .header
                .map_or(0, |h| h.revision)
                + 1
        };
        let mut w = WatchStream {
            client: self.clone(),
            key,
            prefix,
            next,
            stream: None,
            attempt: 0,
        };
        w.connect().await?;
        Ok(w)
    }
}

impl WatchStream {
    /// The first revision not yet delivered (where a resumed watch starts).
    pub fn next_revision(&self) -> i64 {
        self.next
    }

    /// The next batch of events. Errors: [`Error::Compacted`] when the events needed to
    /// resume are gone, [`Error::DeadlineExceeded`] when no member could be reached.
    pub async fn next(&mut self) -> Result<pb::WatchResponse> {
        loop {
            if self.stream.is_none() {
                self.connect().await?;
            }
            let stream = self.stream.as_mut().expect("connected above");
            match stream.message().await {
                Ok(Some(resp)) => {
                    if let Some(last) = resp.events.last().and_then(|e| e.kv.as_ref()) {
                        self.next = last.mod_revision + 1;
                    }
                    self.attempt = 0;
                    return Ok(resp);
                }
                Ok(None) => self.reset(),
                Err(s) if s.code() == tonic::Code::OutOfRange => {
                    return Err(Error::Compacted(s.message().to_owned()))
                }
                Err(s) if retryable(&s) || s.code() == tonic::Code::Aborted => self.reset(),
                Err(s) => return Err(Error::Status(Box::new(s))),
            }
        }
    }

    fn reset(&mut self) {
        self.stream = None;
        self.attempt += 1;
    }

    /// Opens a stream from `next`, trying members in turn with backoff.
    async fn connect(&mut self) -> Result<()> {
        let config = &self.client.inner.config;
        let deadline = Instant::now() + config.timeout;
        let mut backoff = config.initial_backoff;
        let mut last;
        loop {
            let (addr, mut client) = self.client.watch_client(self.attempt);
            let req = pb::WatchRequest {
                key: self.key.clone(),
                prefix: self.prefix,
                start_revision: self.next,
            };
            match client.watch(req).await {
                Ok(resp) => {
                    self.stream = Some(resp.into_inner());
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::OutOfRange => {
                    return Err(Error::Compacted(s.message().to_owned()))
                }
                Err(s) if retryable(&s) => last = format!("{addr}: {}", s.message()),
                Err(s) => return Err(Error::Status(Box::new(s))),
            }
            self.attempt += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::DeadlineExceeded {
                    timeout: config.timeout,
                    last,
                });
            }
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(config.max_backoff.max(Duration::from_millis(1)));
        }
    }
}
