//! `$SYS/broker/...` topics: broker statistics published as retained messages every
//! `sys.interval_secs`, the convention mosquitto established and tools expect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::QoS;

use crate::broker::Broker;
use crate::message::Message;

/// Totals since start, for `$SYS` (the Prometheus metrics carry labelled breakdowns).
#[derive(Debug, Default)]
pub struct SysStats {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub clients_connected: AtomicU64,
}

impl SysStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Publishes the `$SYS` topics until shutdown.
pub async fn run(broker: Arc<Broker>) {
    let every = broker.config.sys.interval_secs;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => publish_once(&broker),
            _ = broker.shutdown.cancelled() => return,
        }
    }
}

/// One round of `$SYS` messages.
pub fn publish_once(broker: &Broker) {
    let s = &broker.stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
    let sessions = broker.sessions.len() as u64;
    let connected = s.clients_connected.load(Ordering::Relaxed);
    let values = [
        (
            "version",
            format!("robustmq-reference {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "uptime",
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        ("clients/connected", connected.to_string()),
        ("clients/total", sessions.to_string()),
        (
            "clients/disconnected",
            sessions.saturating_sub(connected).to_string(),
        ),
        ("messages/received", load(&s.messages_received)),
        ("messages/sent", load(&s.messages_sent)),
        ("bytes/received", load(&s.bytes_received)),
        ("bytes/sent", load(&s.bytes_sent)),
        ("subscriptions/count", broker.router.len().to_string()),
        ("retained messages/count", broker.retained.len().to_string()),
    ];
    let mut fanout = crate::fanout::Fanout::default();
    for (topic, value) in values {
        let message = Message {
            topic: format!("$SYS/broker/{topic}").into(),
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            publisher: Default::default(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        };
        broker.publish_local(Arc::new(message), &mut fanout);
    }
    // The subscribers get the whole set with one wake-up each.
    fanout.wake();
}
