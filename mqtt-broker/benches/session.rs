//! Session queue cost: `Session::enqueue` (what every publisher does per matching
//! subscriber: lock, bound check, push, wake) and draining it (what the owning
//! connection does: lock, pop), singly and in bursts of 64.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mqtt_broker::message::{Delivery, Message};
use mqtt_broker::session::{QueueLimits, Session};
use mqtt_codec::QoS;

const LIMITS: QueueLimits = QueueLimits {
    max_queued: 1_000_000,
    queue_qos0_offline: true,
};

fn delivery(message: &Arc<Message>) -> Delivery {
    Delivery {
        message: message.clone(),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        span: None,
        durable: None,
        replay: false,
    }
}

fn message() -> Arc<Message> {
    Arc::new(Message {
        topic: "devices/42/temperature".into(),
        payload: bytes::Bytes::from_static(&[0u8; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        publisher: "bench".into(),
        received_at: Instant::now(),
        remote: false,
        trace: None,
    })
}

fn queue(c: &mut Criterion) {
    let msg = message();
    let mut group = c.benchmark_group("session_queue");
    group.throughput(Throughput::Elements(1));
    let session = Session::new("subscriber".into());
    group.bench_function("push_pop_1", |b| {
        b.iter(|| {
            session.enqueue(delivery(&msg), LIMITS);
            let popped = session.lock().queue.pop_front();
            assert!(popped.is_some());
        })
    });
    for burst in [16usize, 64] {
        group.throughput(Throughput::Elements(burst as u64));
        group.bench_with_input(
            BenchmarkId::new("push_then_drain", burst),
            &burst,
            |b, &n| {
                b.iter_batched(
                    || Session::new("subscriber".into()),
                    |s| {
                        for _ in 0..n {
                            s.enqueue(delivery(&msg), LIMITS);
                        }
                        // The connection drains under one lock, as `drain` does.
                        let mut st = s.lock();
                        let mut k = 0;
                        while st.queue.pop_front().is_some() {
                            k += 1;
                        }
                        assert_eq!(k, n);
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
