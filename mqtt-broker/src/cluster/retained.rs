//! Retained messages shared by the cluster: each one is a record in the placement center
//! under `/mqtt/retained/{topic}`, and every broker mirrors the prefix into its local
//! retained store, from which new subscriptions are served without a remote call.
//!
//! A retained PUBLISH is acknowledged after its record is committed and every broker's
//! mirror has applied it (`barrier`), so a subscriber on any node that subscribes after
//! the PUBACK gets it (every node applies the same records in revision order, so concurrent
//! publishers to one topic leave the same winner everywhere). `$SYS` topics stay local.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use placement_client::{pb, PlacementClient};
use prometheus_client::metrics::gauge::Gauge;
use prost::Message as _;
use robustmq_proto::broker as broker_pb;
use tokio::sync::watch;

use super::convert;
use super::mirror::Mirror;
use crate::message::Message;
use crate::retained::RetainedStore;

/// Where retained messages live in the placement center.
pub const RETAINED_PREFIX: &str = "/mqtt/retained/";

/// Whether a topic's retained message is shared cluster-wide.
pub fn is_shared(topic: &str) -> bool {
    !topic.starts_with('$')
}

/// Stores (or, for an empty payload, deletes) the retained record of `message`, then
/// waits until the local mirror has applied that revision; returns the revision.
pub async fn store(
    client: &PlacementClient,
    message: &Message,
    applied: &mut watch::Receiver<i64>,
    wait: Duration,
) -> Result<i64, String> {
    let key = format!("{RETAINED_PREFIX}{}", message.topic);
    let revision = if message.payload.is_empty() {
        client
            .delete(key)
            .await
            .map(|r| r.header.map_or(0, |h| h.revision))
    } else {
        let record = convert::retained_record(message, Instant::now());
        client
            .put(key, record.encode_to_vec())
            .await
            .map(|r| r.header.map_or(0, |h| h.revision))
    }
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(wait, applied.wait_for(|at| *at >= revision)).await {
        Ok(Ok(_)) => Ok(revision),
        Ok(Err(_)) => Err("the retained-message mirror has stopped".into()),
        Err(_) => Err(format!(
            "retained message stored at revision {revision} but not yet applied here after {wait:?}"
        )),
    }
}

/// Applies the mirrored records to the local retained store.
pub struct RetainedMirror {
    pub store: Arc<dyn RetainedStore>,
    pub gauge: Gauge,
}

impl RetainedMirror {
    fn set(&self, key: &[u8], value: &[u8]) {
        let Some(topic) = topic_of(key) else { return };
        let decoded = broker_pb::RetainedRecord::decode(value)
            .map_err(|e| e.to_string())
            .and_then(|r| convert::from_retained(r, Instant::now()).map_err(|e| e.to_string()));
        match decoded {
            Ok(Some(message)) if message.topic == topic => self.store.retain(message),
            Ok(Some(_)) => tracing::warn!(%topic, "retained record under the wrong key; ignored"),
            Ok(None) => self.clear_topic(topic),
            Err(e) => tracing::warn!(%topic, error = %e, "undecodable retained record; ignored"),
        }
    }

    fn clear_topic(&self, topic: &str) {
        self.store.retain(Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::new(),
            qos: mqtt_codec::QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            publisher: Default::default(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        }));
    }
}

fn topic_of(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key).ok()?.strip_prefix(RETAINED_PREFIX)
}

impl Mirror for RetainedMirror {
    fn reset(&mut self, kvs: Vec<pb::KeyValue>) {
        self.store.clear_shared();
        for kv in kvs {
            self.set(&kv.key, &kv.value);
        }
        self.gauge.set(self.store.len() as i64);
    }

    fn apply(&mut self, event: pb::Event) {
        let Some(kv) = event.kv else { return };
        if event.r#type == pb::event::EventType::Delete as i32 {
            if let Some(topic) = topic_of(&kv.key) {
                self.clear_topic(topic);
            }
        } else {
            self.set(&kv.key, &kv.value);
        }
        self.gauge.set(self.store.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retained::MemoryRetainedStore;

    fn event(kind: pb::event::EventType, key: &str, value: Vec<u8>) -> pb::Event {
        pb::Event {
            r#type: kind as i32,
            kv: Some(pb::KeyValue {
                key: key.as_bytes().to_vec(),
                value,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn puts_and_deletes_reach_the_local_store() {
        let store: Arc<dyn RetainedStore> = Arc::new(MemoryRetainedStore::default());
        let mut mirror = RetainedMirror {
            store: store.clone(),
            gauge: Gauge::default(),
        };
        let message = Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"v"),
            qos: mqtt_codec::QoS::AtLeastOnce,
            retain: true,
            properties: Default::default(),
            publisher: "p".into(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        };
        let record = convert::retained_record(&message, Instant::now()).encode_to_vec();
        mirror.apply(event(
            pb::event::EventType::Put,
            "/mqtt/retained/a/b",
            record.clone(),
        ));
        let found = store.matching("a/+", Instant::now());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].payload, Bytes::from_static(b"v"));
        assert_eq!(mirror.gauge.get(), 1);
        // A record stored under another topic's key is not trusted.
        mirror.apply(event(pb::event::EventType::Put, "/mqtt/retained/x", record));
        assert_eq!(store.len(), 1);
        mirror.apply(event(
            pb::event::EventType::Delete,
            "/mqtt/retained/a/b",
            vec![],
        ));
        assert!(store.is_empty());
        assert_eq!(mirror.gauge.get(), 0);
    }
}
