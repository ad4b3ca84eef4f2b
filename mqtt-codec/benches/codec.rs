//! Codec micro-benchmarks: PUBLISH decode and encode (64-byte and 4 KiB payloads, QoS 0
//! and 1, MQTT 3.1.1 and 5.0) and topic matching.
//!
//! Decoding runs over one long read buffer holding many packets back to back, as a
//! connection's buffer does, so each decode is the steady-state split-and-slice with no
//! allocation (the buffer is already shared after its first split).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mqtt_codec::{
    decode, encode, topic, Packet, ProtocolVersion, Publish, PublishProperties, QoS,
    MAX_PACKET_SIZE,
};

/// Packets per refill of the decode buffer (bounded so 4 KiB packets stay in memory).
const BATCH: u64 = 1024;

struct Case {
    name: &'static str,
    version: ProtocolVersion,
    packet: Packet,
}

fn publish(qos: QoS, payload: usize, properties: PublishProperties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "sensors/building-7/floor-3/temperature".into(),
        packet_id: (qos != QoS::AtMostOnce).then_some(42),
        payload: Bytes::from(vec![0x5A; payload]),
        properties,
    })
}

fn cases() -> Vec<Case> {
    use ProtocolVersion::{V3_1_1, V5};
    use QoS::{AtLeastOnce, AtMostOnce};
    let none = PublishProperties::default;
    // What DESIGN.md's trace propagation puts on every v5 message.
    let traced = || PublishProperties {
        user_properties: vec![(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        )],
        ..Default::default()
    };
    let case = |name, version, packet| Case {
        name,
        version,
        packet,
    };
    vec![
        case("v3.1.1/qos0/64B", V3_1_1, publish(AtMostOnce, 64, none())),
        case("v3.1.1/qos1/64B", V3_1_1, publish(AtLeastOnce, 64, none())),
        case("v5/qos0/64B", V5, publish(AtMostOnce, 64, none())),
        case("v5/qos1/64B", V5, publish(AtLeastOnce, 64, none())),
        case(
            "v5/qos1/64B+traceparent",
            V5,
            publish(AtLeastOnce, 64, traced()),
        ),
        case(
            "v3.1.1/qos1/4KiB",
            V3_1_1,
            publish(AtLeastOnce, 4096, none()),
        ),
        case("v5/qos1/4KiB", V5, publish(AtLeastOnce, 4096, none())),
    ]
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for case in cases() {
        let mut frame = BytesMut::new();
        encode(&case.packet, case.version, &mut frame).unwrap();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    let mut buf = BytesMut::with_capacity(frame.len() * n as usize);
                    for _ in 0..n {
                        buf.extend_from_slice(&frame);
                    }
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(decode(&mut buf, Some(case.version), MAX_PACKET_SIZE).unwrap());
                    }
                    elapsed += start.elapsed();
                    left -= n;
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for case in cases() {
        let mut buf = BytesMut::with_capacity(8192);
        encode(&case.packet, case.version, &mut buf).unwrap();
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(case.name, |b| {
            b.iter(|| {
                buf.clear();
                encode(black_box(&case.packet), case.version, &mut buf).unwrap();
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

fn bench_matches(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_matches");
    let name = "sport/tennis/player1/score/wimbledon";
    let filters = [
        ("exact", name),
        ("multi_level", "sport/tennis/player1/#"),
        ("single_levels", "sport/+/+/score/+"),
        ("miss_early", "news/#"),
        ("miss_late", "sport/tennis/player1/score/rolandgarros"),
    ];
    for (label, filter) in filters {
        group.bench_function(label, |b| {
            b.iter(|| topic::matches(black_box(filter), black_box(name)))
        });
    }
    group.bench_function("dollar_topic_vs_hash", |b| {
        b.iter(|| topic::matches(black_box("#"), black_box("$SYS/broker/uptime")))
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode, bench_matches);
criterion_main!(benches);
