//! The client-facing `Watch` service: a stream of the events of a key or prefix, from a
//! revision, replayed from this node's history and then followed live.

use std::pin::Pin;
use std::sync::Arc;

use futures::{SinkExt, Stream};
use robustmq_proto::placement as pb;
use robustmq_proto::placement::watch_server::Watch;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::kv::watch::{Event, HubMessage, KeyFilter};
use crate::node::Core;

/// Events per response when replaying history.
const REPLAY_CHUNK: usize = 1000;

/// Serves `robustmq.placement.v1.Watch`.
pub struct WatchService {
    core: Arc<Core>,
}

impl WatchService {
    pub fn new(core: Arc<Core>) -> Self {
        WatchService { core }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        if req.key.is_empty() && !req.prefix {
            return Err(
                Error::InvalidArgument("watch needs a key (or prefix = true)".into()).into(),
            );
        }
        let filter = KeyFilter {
            key: req.key,
            prefix: req.prefix,
        };
        let sub = self.core.hub.subscribe(&filter, req.start_revision)?;
        let (mut tx, rx) = futures::channel::mpsc::channel(64);
        let core = self.core.clone();
        let mut shutdown = core.shutdown.clone();
        tokio::spawn(async move {
            let response = |events: Vec<Event>| pb::WatchResponse {
                header: Some(core.header(events.last().map_or(0, |e| e.kv.mod_revision))),
                events: events.into_iter().map(Into::into).collect(),
            };
            let mut next = sub.start;
            for chunk in sub.backlog.chunks(REPLAY_CHUNK) {
                next = chunk.last().map_or(next, |e| e.kv.mod_revision + 1);
                if tx.send(Ok(response(chunk.to_vec()))).await.is_err() {
                    return;
                }
            }
            let mut live = sub.live;
            loop {
                let msg = tokio::select! {
                    msg = live.recv() => msg,
                    _ = shutdown.changed() => {
                        let _ = tx.send(Err(Status::unavailable("node shutting down; resume on another member"))).await;
                        return;
                    }
                };
                let status = match msg {
                    Ok(HubMessage::Events(events)) => {
                        // `next` skips what the backlog already delivered.
                        let mine: Vec<Event> = events
                            .iter()
                            .filter(|e| e.kv.mod_revision >= next && filter.matches(&e.kv.key))
                            .cloned()
                            .collect();
                        if let Some(last) = mine.last() {
                            next = last.kv.mod_revision + 1;
                            if tx.send(Ok(response(mine))).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Ok(HubMessage::Reset { oldest }) => Error::Compacted {
                        requested: next,
                        oldest,
                    }
                    .into(),
                    // Too slow for the live feed: the history may still hold the events,
                    // so the watcher can resume from `next`.
                    Err(RecvError::Lagged(_)) => {
                        Status::aborted(format!("watcher fell behind; resume from revision {next}"))
                    }
                    Err(RecvError::Closed) => return,
                };
                let _ = tx.send(Err(status)).await;
                return;
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }
}
