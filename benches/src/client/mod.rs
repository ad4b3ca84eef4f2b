//! MQTT clients that drive the load.
//!
//! `native` is a thin async client on mqtt-codec (connect, subscribe, a publisher with
//! an in-flight window, a subscriber that acknowledges); `rumqttc_impl` drives the same
//! roles through rumqttc. `roles` holds the publisher and subscriber loops of the
//! native client. Both report through the same [`PublisherOutcome`] /
//! [`SubscriberOutcome`].

pub mod native;
pub mod roles;
pub mod rumqttc_impl;
pub mod template;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqtt_codec::{ProtocolVersion, QoS};
use tokio_util::sync::CancellationToken;

use crate::accounting::StreamTracker;
use crate::stats::{LatencySink, Live, PerSecond};

/// How to connect one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub addr: SocketAddr,
    pub client_id: String,
    pub version: ProtocolVersion,
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval (0 for clean sessions).
    pub session_expiry: u32,
    pub keep_alive: u16,
    pub tls: Option<tls::TlsSettings>,
    /// Time allowed for TCP + TLS + CONNECT/CONNACK.
    pub connect_timeout: Duration,
}

/// State shared by every client of a run.
#[derive(Debug, Clone)]
pub struct RunShared {
    pub live: Arc<Live>,
    pub latency: Arc<Mutex<LatencySink>>,
    /// Wall-clock start of the measured phase (ns since the Unix epoch), for bucketing
    /// per second; set before publishers are released.
    pub epoch_ns: Arc<AtomicU64>,
    /// Cancelled when subscribers should stop reading.
    pub stop_subscribers: CancellationToken,
}

impl RunShared {
    /// Fresh shared state.
    pub fn new() -> Self {
        Self {
            live: Arc::new(Live::default()),
            latency: Arc::new(Mutex::new(LatencySink::default())),
            epoch_ns: Arc::new(AtomicU64::new(0)),
            stop_subscribers: CancellationToken::new(),
        }
    }

    /// Second since the epoch of a wall-clock time in ns.
    pub fn second_of(&self, ns: u64) -> usize {
        let epoch = self.epoch_ns.load(std::sync::atomic::Ordering::Relaxed);
        (ns.saturating_sub(epoch) / 1_000_000_000) as usize
    }
}

impl Default for RunShared {
    fn default() -> Self {
        Self::new()
    }
}

/// What a publisher must do once released.
#[derive(Debug, Clone)]
pub struct PublishJob {
    pub id: u32,
    pub topic: String,
    pub qos: QoS,
    pub payload_size: usize,
    /// Messages per second; `None`: unlimited.
    pub rate: Option<f64>,
    /// Stop after this many messages…
    pub count: Option<u64>,
    /// …or at this time after the release.
    pub duration: Option<Duration>,
    /// QoS 1/2 window.
    pub inflight: usize,
    /// Time allowed after the last publish for its acknowledgements.
    pub drain: Duration,
}

/// How a publisher ended.
#[derive(Debug, Clone, Default)]
pub struct PublisherOutcome {
    pub id: u32,
    pub qos: QoS,
    /// PUBLISH packets written.
    pub sent: u64,
    /// Completed handshakes (PUBACK, PUBCOMP); equals `sent` for QoS 0.
    pub acked: u64,
    /// Sent per second since the epoch.
    pub sent_per_second: PerSecond,
    pub error: Option<String>,
}

/// Publisher ids below this are tracked in a dense vector (no hashing per message);
/// larger ones (foreign payloads that happen to carry our magic) in a map.
const DENSE_PUBLISHERS: u32 = 1 << 20;

/// How a subscriber ended.
#[derive(Debug, Default)]
pub struct SubscriberOutcome {
    pub id: u32,
    /// By publisher id (filled by [`SubscriberOutcome::finish`]).
    pub streams: HashMap<u32, StreamTracker>,
    /// QoS each publisher's messages arrived with.
    pub stream_qos: HashMap<u32, QoS>,
    /// Payloads without our header.
    pub foreign: u64,
    /// Wall-clock time of the last delivery (ns since the Unix epoch).
    pub last_received_ns: u64,
    pub error: Option<String>,
    /// Streams of publishers below [`DENSE_PUBLISHERS`], by publisher id.
    dense: Vec<Option<(StreamTracker, QoS)>>,
}

impl SubscriberOutcome {
    /// Records one of our payloads.
    pub fn record(&mut self, stamp: crate::payload::Stamp, qos: QoS) {
        if stamp.publisher < DENSE_PUBLISHERS {
            let i = stamp.publisher as usize;
            if self.dense.len() <= i {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i]
                .get_or_insert_with(|| (StreamTracker::default(), qos))
                .0
                .record(stamp.seq);
            return;
        }
        self.streams
            .entry(stamp.publisher)
            .or_default()
            .record(stamp.seq);
        self.stream_qos.entry(stamp.publisher).or_insert(qos);
    }

    /// Moves the dense streams into `streams` / `stream_qos`; call once at the end.
    pub fn finish(&mut self) {
        for (publisher, slot) in std::mem::take(&mut self.dense).into_iter().enumerate() {
            if let Some((tracker, qos)) = slot {
                self.streams.insert(publisher as u32, tracker);
                self.stream_qos.insert(publisher as u32, qos);
            }
        }
    }
}
