//! Measurements shared by the clients of a run: live counters for the progress bar,
//! latency histograms (HDR, microseconds) and per-second buckets for the timeline.
//!
//! Clients record into their own [`LatencyRecorder`] and hand it to the shared
//! [`LatencySink`] once per second of receive time, so the hot path takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use mqtt_codec::QoS;

/// Longest latency recorded, microseconds (larger values are clamped).
const MAX_LATENCY_US: u64 = 60 * 60 * 1_000_000;

/// A latency histogram in microseconds with 3 significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Coarser histogram for one second of the timeline (2 significant figures).
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

/// Counters every client adds to, read by the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub connected: AtomicU64,
    pub errors: AtomicU64,
}

impl Live {
    /// Adds `n` to a counter (relaxed: these are statistics).
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    /// Reads a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Where recorders deliver: the whole run's histograms and the per-second timeline.
#[derive(Debug, Default)]
pub struct LatencySink {
    /// Whole run, by QoS (index = QoS level).
    pub by_qos: [Option<Histogram<u64>>; 3],
    /// Per second of receive time since the start of publishing: all QoS together.
    pub per_second: Vec<Option<Histogram<u64>>>,
    /// Messages received per second.
    pub received_per_second: Vec<u64>,
}

impl LatencySink {
    /// All QoS levels together.
    pub fn overall(&self) -> Histogram<u64> {
        let mut all = latency_histogram();
        for h in self.by_qos.iter().flatten() {
            all.add(h).expect("same bounds");
        }
        all
    }
}

/// One client's latency recording for the current second.
#[derive(Debug)]
pub struct LatencyRecorder {
    sink: Arc<Mutex<LatencySink>>,
    second: usize,
    by_qos: [Option<Histogram<u64>>; 3],
    received: u64,
}

impl LatencyRecorder {
    /// A recorder that flushes into `sink`.
    pub fn new(sink: Arc<Mutex<LatencySink>>) -> Self {
        Self {
            sink,
            second: 0,
            by_qos: [None, None, None],
            received: 0,
        }
    }

    /// Records one message received in `second` (since the start) after `latency_us`.
    pub fn record(&mut self, qos: QoS, second: usize, latency_us: u64) {
        if second != self.second {
            self.flush();
            self.second = second;
        }
        self.by_qos[qos as usize]
            .get_or_insert_with(latency_histogram)
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
        self.received += 1;
    }

    /// Hands the current second over to the sink.
    pub fn flush(&mut self) {
        if self.received == 0 {
            return;
        }
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let second = self.second;
        if sink.per_second.len() <= second {
            sink.per_second.resize_with(second + 1, || None);
            sink.received_per_second.resize(second + 1, 0);
        }
        sink.received_per_second[second] += self.received;
        for (q, local) in self.by_qos.iter_mut().enumerate() {
            let Some(local) = local.as_mut().filter(|h| !h.is_empty()) else {
                continue;
            };
            let total = sink.by_qos[q].get_or_insert_with(latency_histogram);
            total.add(&*local).expect("same bounds");
            let per_second = sink.per_second[second].get_or_insert_with(second_histogram);
            per_second.add(&*local).expect("same bounds");
            local.reset();
        }
        self.received = 0;
    }
}

/// Counts per second since a start instant (sent messages, connections).
#[derive(Debug, Clone, Default)]
pub struct PerSecond(pub Vec<u64>);

impl PerSecond {
    /// Adds one event in `second`.
    pub fn bump(&mut self, second: usize) {
        if self.0.len() <= second {
            self.0.resize(second + 1, 0);
        }
        self.0[second] += 1;
    }

    /// Adds another series element-wise.
    pub fn merge(&mut self, other: &PerSecond) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_per_qos_and_per_second() {
        let sink = Arc::new(Mutex::new(LatencySink::default()));
        let mut a = LatencyRecorder::new(sink.clone());
        let mut b = LatencyRecorder::new(sink.clone());
        for i in 1..=100 {
            a.record(QoS::AtMostOnce, 0, i * 10);
        }
        for i in 1..=100 {
            b.record(QoS::AtLeastOnce, 1, 5_000 + i);
        }
        a.record(QoS::AtMostOnce, 2, 1_000_000);
        a.flush();
        b.flush();
        let sink = sink.lock().unwrap();
        assert_eq!(sink.received_per_second, vec![100, 100, 1]);
        let q0 = Percentiles::of(sink.by_qos[0].as_ref().unwrap());
        assert_eq!(q0.count, 101);
        assert!((500..=515).contains(&q0.p50_us), "{q0:?}");
        assert!(q0.max_us >= 999_000);
        let q1 = Percentiles::of(sink.by_qos[1].as_ref().unwrap());
        assert_eq!(q1.count, 100);
        assert!(
            (4_995..=5_001).contains(&q1.min_us),
            "3 significant figures: {q1:?}"
        );
        assert!(sink.by_qos[2].is_none());
        assert_eq!(sink.overall().len(), 201);
        let s1 = Percentiles::of(sink.per_second[1].as_ref().unwrap());
        assert!(
            (5_000..=5_150).contains(&s1.p99_us),
            "2 significant figures: {s1:?}"
        );
    }

    #[test]
    fn per_second_counts_merge() {
        let mut a = PerSecond::default();
        a.bump(0);
        a.bump(2);
        let mut b = PerSecond::default();
        b.bump(3);
        a.merge(&b);
        assert_eq!(a.0, vec![1, 0, 1, 1]);
    }
}
