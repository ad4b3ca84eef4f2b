//! Topic matching cost: `Router::route` over 1k and 100k subscriptions.
//!
//! The table mixes the shapes real deployments have: one literal filter per device, a
//! `+` filter per device and a few broad `#` watchers. A PUBLISH to one device's topic
//! matches 3 subscriptions whatever the table size, so the figures show how matching
//! scales with the number of subscriptions (it should not: the trie walk depends on the
//! topic's depth, not on the table).

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mqtt_broker::message::Message;
use mqtt_broker::router::{Router, SharedSelection};
use mqtt_broker::session::{Session, Subscription};
use mqtt_codec::{QoS, SubscriptionOptions};

fn subscription(filter: String) -> Subscription {
    Subscription {
        share_group: None,
        filter: filter.into(),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        id: None,
    }
}

/// `n` subscriptions: per device a literal and a `+` filter, plus one `#` watcher.
fn router_with(n: usize) -> Router {
    let router = Router::default();
    let watcher = Arc::new(Session::new("watcher".into()));
    router.subscribe(&watcher, &subscription("devices/#".into()));
    for i in 0..(n - 1) / 2 {
        let s = Arc::new(Session::new(format!("device-{i}").into()));
        router.subscribe(&s, &subscription(format!("devices/{i}/temperature")));
        router.subscribe(&s, &subscription(format!("devices/{i}/+")));
    }
    router
}

fn message(topic: &str) -> Message {
    Message {
        topic: topic.into(),
        payload: bytes::Bytes::from_static(&[0u8; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        publisher: "bench".into(),
        received_at: Instant::now(),
        remote: false,
        trace: None,
    }
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1_000, 100_000] {
        let router = router_with(n);
        let hit = message("devices/42/temperature");
        let miss = message("other/42/temperature");
        let mut out = Vec::new();
        group.bench_with_input(BenchmarkId::new("match_3_of", n), &n, |b, _| {
            b.iter(|| {
                router.route(&hit, SharedSelection::All, &mut out);
                assert_eq!(out.len(), 2, "device (merged literal and +) and watcher");
            })
        });
        group.bench_with_input(BenchmarkId::new("no_match_of", n), &n, |b, _| {
            b.iter(|| {
                router.route(&miss, SharedSelection::All, &mut out);
                assert!(out.is_empty());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
