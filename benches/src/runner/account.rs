//! Accounting at the end of a run: outcomes of publishers and subscribers become the
//! report's per-QoS tallies, latency percentiles, timeline and error list.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use mqtt_codec::QoS;

use crate::accounting::StreamTracker;
use crate::client::{PublisherOutcome, RunShared, SubscriberOutcome};
use crate::report::{QosReport, Report, SecondReport};
use crate::scenario::Plan;
use crate::stats::{PerSecond, Percentiles};

/// Adds client errors to the report (the first 20 verbatim, all counted).
pub(super) fn collect_errors(report: &mut Report, errors: impl Iterator<Item = String>) {
    for e in errors {
        report.error_count += 1;
        if report.errors.len() < 20 {
            report.errors.push(e);
        }
    }
}

/// Deliveries the subscribers should see in total (shared groups count once).
pub(super) fn expected_deliveries(plan: &Plan, pubs: &[PublisherOutcome]) -> u64 {
    let sent: HashMap<u32, u64> = pubs.iter().map(|p| (p.id, p.sent)).collect();
    let mut groups_seen = std::collections::HashSet::new();
    plan.subscribers
        .iter()
        .filter(|s| s.group.is_none_or(|g| groups_seen.insert(g)))
        .filter_map(|s| s.sources.as_ref())
        .map(|sources| {
            sources
                .iter()
                .map(|p| sent.get(p).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .sum()
}

/// One receiver: an ordinary subscriber, or a whole shared group.
struct Receiver<'a> {
    /// Publishers it must hear from, when known.
    sources: Option<&'a Vec<u32>>,
    /// What it heard, by publisher.
    streams: HashMap<u32, StreamTracker>,
    /// QoS each publisher's messages arrived with.
    qos: HashMap<u32, QoS>,
}

/// Turns outcomes into the report: tallies per QoS, latency, timeline, errors.
pub(super) fn account(
    report: &mut Report,
    plan: &Plan,
    pubs: &[PublisherOutcome],
    subs: &[SubscriberOutcome],
    shared: &RunShared,
) {
    let qos_key = |q: QoS| q.as_str().to_owned();
    let mut by_qos: BTreeMap<String, QosReport> = BTreeMap::new();
    let mut sent_ps = PerSecond::default();
    let pub_qos: HashMap<u32, QoS> = pubs.iter().map(|p| (p.id, p.qos)).collect();
    let pub_sent: HashMap<u32, u64> = pubs.iter().map(|p| (p.id, p.sent)).collect();
    for p in pubs {
        let r = by_qos.entry(qos_key(p.qos)).or_default();
        r.sent += p.sent;
        r.acked += p.acked;
        report.sent += p.sent;
        sent_ps.merge(&p.sent_per_second);
    }
    // Receivers: each ordinary subscriber, and each shared group as one.
    let mut receivers: BTreeMap<(bool, u32), Receiver<'_>> = BTreeMap::new();
    for (out, planned) in subs.iter().zip(&plan.subscribers) {
        let key = match planned.group {
            Some(g) => (true, g),
            None => (false, planned.id),
        };
        let entry = receivers.entry(key).or_insert_with(|| Receiver {
            sources: planned.sources.as_ref(),
            streams: HashMap::new(),
            qos: HashMap::new(),
        });
        for (publisher, tracker) in &out.streams {
            entry.streams.entry(*publisher).or_default().merge(tracker);
        }
        for (publisher, q) in &out.stream_qos {
            entry.qos.insert(*publisher, *q);
        }
        report.foreign += out.foreign;
    }
    for Receiver {
        sources,
        streams,
        qos: qos_seen,
    } in receivers.values()
    {
        let known: Vec<u32> = match sources {
            Some(list) => list.to_vec(),
            None => streams.keys().copied().collect(),
        };
        for publisher in known {
            let expected = sources.map(|_| pub_sent.get(&publisher).copied().unwrap_or(0));
            let q = pub_qos
                .get(&publisher)
                .or_else(|| qos_seen.get(&publisher))
                .copied()
                .unwrap_or_default();
            let tally = streams
                .get(&publisher)
                .map(|t| t.tally(expected))
                .unwrap_or_else(|| StreamTracker::default().tally(expected));
            by_qos.entry(qos_key(q)).or_default().tally.add(&tally);
            report.received += tally.received + tally.duplicated;
        }
    }
    let sink = shared.latency.lock().unwrap_or_else(|e| e.into_inner());
    for (q, h) in sink.by_qos.iter().enumerate() {
        if let (Some(h), Some(qos)) = (h, QoS::from_u8(q as u8)) {
            by_qos.entry(qos_key(qos)).or_default().latency = Percentiles::of(h);
        }
    }
    report.latency = Percentiles::of(&sink.overall());
    let seconds = sent_ps.0.len().max(sink.received_per_second.len());
    report.timeline = (0..seconds)
        .map(|i| {
            let h = sink.per_second.get(i).and_then(|h| h.as_ref());
            let p = h.map(Percentiles::of).unwrap_or_default();
            SecondReport {
                second: i,
                sent: sent_ps.0.get(i).copied().unwrap_or(0),
                received: sink.received_per_second.get(i).copied().unwrap_or(0),
                p50_us: p.p50_us,
                p99_us: p.p99_us,
                max_us: p.max_us,
            }
        })
        .collect();
    drop(sink);
    report.by_qos = by_qos;
    report.send_rate = report.sent as f64 / report.publish_secs.max(1e-9);
    let epoch = shared.epoch_ns.load(Ordering::Relaxed);
    report.receive_secs = match subs.iter().map(|o| o.last_received_ns).max() {
        Some(last) if last > epoch => (last - epoch) as f64 / 1e9,
        _ => report.publish_secs,
    };
    report.receive_rate = report.received as f64 / report.receive_secs.max(1e-9);
    collect_errors(
        report,
        pubs.iter()
            .filter_map(|p| p.error.clone())
            .chain(subs.iter().filter_map(|s| s.error.clone())),
    );
}
