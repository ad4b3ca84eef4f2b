//! Latency histograms in seconds whose buckets link to traces through exemplars.
//!
//! An observation made while a *sampled* span is current records `{trace_id="…"}` as the
//! bucket's exemplar, so a slow bucket in Grafana opens the trace that landed there.
//! Unsampled or absent spans attach nothing: an exemplar pointing to a trace that was never
//! exported would be a dead link.
//!
//! The current trace is read from OpenTelemetry's thread-local context, which
//! `tracing-opentelemetry` attaches whenever a span is entered. That is a thread-local
//! borrow, not a subscriber lookup, so an observation without a span costs little more
//! than the histogram update itself (see `benches/telemetry.rs`).
//!
//! # Why not prometheus-client's `HistogramWithExemplars`
//!
//! A broker observes one latency per delivery, from every runtime worker at once, into
//! the same few histograms. prometheus-client's histograms take a lock per observation
//! (`HistogramWithExemplars` a write lock and then the histogram's mutex), so the workers
//! took turns on those locks and their cache lines: with two workers that was most of
//! telemetry's cost in a fan-out benchmark. Here an observation is two uncontended atomic
//! adds on the observing thread's own shard (its own cache lines); the shards are summed
//! only when scraped. Only an observation that carries an exemplar (a sampled trace)
//! takes a lock.
//!
//! prometheus-client gives no way to build an `Exemplar` outside the crate, so the
//! exemplars are written into the text by [`ExemplarWriter`], the writer
//! [`crate::exposition::encode_registry`] encodes into: the histogram's `encode` hands its
//! exemplars to that writer (through a thread-local, for the duration of one
//! `encode_histogram` call) and the writer appends each to its bucket's line. Encoded by
//! any other writer, the histogram's counts are complete and its exemplars are left out.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry::Context;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelSetEncoder, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};

mod splice;
pub use splice::ExemplarWriter;

/// Bucket upper bounds in seconds, 50 µs … 10 s: fine below a millisecond, where an
/// in-memory publish lives, and coarse up to the seconds a slow fsync or RPC can take.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The default latency buckets, in seconds.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    LATENCY_BUCKETS.iter().copied()
}

/// The exemplar label set, `{trace_id="<32 hex digits>"}`.
///
/// Holds the binary id and formats it only when scraped: an observation that attaches
/// an exemplar then allocates nothing.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TraceLabel {
    /// The W3C trace id; exported as lower-case hex, as Jaeger and Tempo display it.
    pub trace_id: TraceId,
}

impl EncodeLabelSet for TraceLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("trace_id", Hex(self.trace_id))].encode(encoder)
    }
}

/// A trace id written as a label value.
struct Hex(TraceId);

impl EncodeLabelValue for Hex {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        write!(encoder, "{}", self.0)
    }
}

/// A latency histogram (seconds) with trace exemplars. Cheap to clone: clones share data.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Arc<Shared>,
}

/// The data of one histogram: per-shard counters, the bucket bounds and the exemplars.
#[derive(Debug)]
struct Shared {
    /// Finite upper bounds, ascending; the `+Inf` bucket follows the last.
    bounds: Box<[f64]>,
    /// `shards × lines_per_shard` cache lines. A shard's slots are its bucket counts
    /// (`bounds.len() + 1`, not cumulative) followed by the bit pattern of its `f64` sum.
    lines: Box<[Line]>,
    lines_per_shard: usize,
    /// Shards − 1: their number is a power of two, so a thread's shard is a mask away.
    shard_mask: usize,
    /// The latest exemplar of each bucket (`+Inf` included).
    exemplars: Mutex<Box<[Option<StoredExemplar>]>>,
}

/// One cache line of counters (128 bytes: two 64-byte lines, as the adjacent-line
/// prefetcher of x86 pulls them in pairs), so two shards never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line([AtomicU64; SLOTS_PER_LINE]);

const SLOTS_PER_LINE: usize = 16;

#[derive(Clone, Copy, Debug)]
struct StoredExemplar {
    trace: TraceLabel,
    value: f64,
    time: SystemTime,
}

impl LatencyHistogram {
    /// A histogram with [`latency_buckets`].
    pub fn new() -> Self {
        Self::with_buckets(latency_buckets())
    }

    /// A histogram with custom bucket bounds, in seconds. Non-finite bounds are dropped
    /// (`+Inf` is always there) and the rest sorted.
    pub fn with_buckets(buckets: impl Iterator<Item = f64>) -> Self {
        let mut bounds: Vec<f64> = buckets.filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        // Buckets, `+Inf` and the sum.
        let slots = bounds.len() + 2;
        let lines_per_shard = slots.div_ceil(SLOTS_PER_LINE);
        let shards = shard_count();
        let lines = (0..shards * lines_per_shard)
            .map(|_| Line::default())
            .collect();
        LatencyHistogram {
            inner: Arc::new(Shared {
                exemplars: Mutex::new(vec![None; bounds.len() + 1].into_boxed_slice()),
                bounds: bounds.into_boxed_slice(),
                lines,
                lines_per_shard,
                shard_mask: shards - 1,
            }),
        }
    }

    /// Records `seconds`, with the current sampled trace (if any) as exemplar.
    pub fn observe(&self, seconds: f64) {
        let exemplar = current_trace_exemplar();
        self.record(seconds, exemplar);
    }

    /// Records `seconds` with no exemplar: for a measurement known to belong to no trace
    /// (an untraced message), without looking up the current context.
    pub fn observe_untraced(&self, seconds: f64) {
        self.record(seconds, None);
    }

    /// Records the time elapsed since `start`.
    pub fn observe_duration(&self, start: Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }

    /// Records `seconds` with the trace of `cx` as exemplar, for work measured outside its
    /// span (e.g. a message's end-to-end latency against its creation context).
    pub fn observe_in(&self, seconds: f64, cx: &Context) {
        self.record(seconds, trace_exemplar(cx));
    }

    fn record(&self, seconds: f64, exemplar: Option<TraceLabel>) {
        let shared = &*self.inner;
        let bucket = shared.bucket(seconds);
        let shard = shared.shard(shard_index());
        slot(shard, bucket).fetch_add(1, Ordering::Relaxed);
        shared.add_sum(shard, seconds);
        if let Some(trace) = exemplar {
            // Exemplar timestamps let Prometheus tell a new exemplar from the one it
            // scraped last time; the clock is read only when an exemplar is attached.
            let stored = StoredExemplar {
                trace,
                value: seconds,
                time: SystemTime::now(),
            };
            shared
                .exemplars
                .lock()
                .unwrap_or_else(PoisonError::into_inner)[bucket] = Some(stored);
        }
    }
}

impl Shared {
    /// The bucket of `seconds`: with `le` semantics the first whose bound is >= the
    /// value; NaN goes to `+Inf`. A scan from the smallest bound: latencies sit in the
    /// first few buckets and neighbouring observations in the same one, so it stops
    /// early on a well-predicted branch (a binary search over so few bounds was twice
    /// as slow, and counting every bound below the value slower too).
    fn bucket(&self, seconds: f64) -> usize {
        self.bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len())
    }

    /// Adds `seconds` to the sum of `shard`. The shard is the calling thread's, so the
    /// exchange almost never retries.
    fn add_sum(&self, shard: &[Line], seconds: f64) {
        let _ = slot(shard, self.bounds.len() + 1).fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |bits| Some((f64::from_bits(bits) + seconds).to_bits()),
        );
    }

    /// The cache lines of shard `index` (taken modulo the number of shards).
    fn shard(&self, index: usize) -> &[Line] {
        let first = (index & self.shard_mask) * self.lines_per_shard;
        &self.lines[first..first + self.lines_per_shard]
    }

    fn shards(&self) -> usize {
        self.shard_mask + 1
    }

    /// `(upper bound, count)` per bucket (not cumulative, `+Inf` last), the total count
    /// and the sum, added up over the shards. The count is the buckets' total, so it
    /// always equals the `+Inf` bucket a scraper computes.
    fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|bound| (bound, 0))
            .collect();
        let mut sum = 0.0;
        for shard in 0..self.shards() {
            let shard = self.shard(shard);
            for (i, bucket) in buckets.iter_mut().enumerate() {
                bucket.1 += slot(shard, i).load(Ordering::Relaxed);
            }
            sum += f64::from_bits(slot(shard, self.bounds.len() + 1).load(Ordering::Relaxed));
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        (buckets, count, sum)
    }
}

/// Counter `index` of a shard's lines.
fn slot(shard: &[Line], index: usize) -> &AtomicU64 {
    &shard[index / SLOTS_PER_LINE].0[index % SLOTS_PER_LINE]
}

/// Shards per histogram: twice the CPUs (threads are spread over the shards by the order
/// in which they first observe, not by CPU), a power of two, at most 64.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        (cpus * 2).next_power_of_two().min(64)
    })
}

/// This thread's shard number, handed out in turn to threads as they first observe.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|index| *index)
}

/// Untraced observations of one [`LatencyHistogram`] gathered by their owner and added
/// to it in one go: for a loop that observes many at a time, such as a connection
/// writing a batch of deliveries. An observation then costs no atomic operation; the
/// flush costs one per bucket used and one for the sum. Flushed on drop.
#[derive(Debug)]
pub struct LatencyBatch {
    histogram: LatencyHistogram,
    /// Per bucket (`+Inf` included); empty until the first observation, so an owner
    /// that never observes (an idle connection) holds no buffer.
    counts: Vec<u32>,
    sum: f64,
    observed: u32,
}

impl LatencyBatch {
    /// An empty batch for `histogram`.
    pub fn new(histogram: LatencyHistogram) -> Self {
        Self {
            histogram,
            counts: Vec::new(),
            sum: 0.0,
            observed: 0,
        }
    }

    /// Records `seconds` (no exemplar: an observation with a trace goes straight to the
    /// histogram, with [`LatencyHistogram::observe_in`]).
    pub fn observe(&mut self, seconds: f64) {
        let shared = &*self.histogram.inner;
        if self.counts.is_empty() {
            self.counts = vec![0; shared.bounds.len() + 1];
        }
        self.counts[shared.bucket(seconds)] += 1;
        self.sum += seconds;
        self.observed += 1;
        if self.observed == u32::MAX {
            self.flush();
        }
    }

    /// Adds what was gathered to the histogram.
    pub fn flush(&mut self) {
        if self.observed == 0 {
            return;
        }
        let shared = &*self.histogram.inner;
        let shard = shared.shard(shard_index());
        for (bucket, count) in self.counts.iter_mut().enumerate() {
            if *count > 0 {
                slot(shard, bucket).fetch_add(u64::from(*count), Ordering::Relaxed);
                *count = 0;
            }
        }
        shared.add_sum(shard, self.sum);
        self.sum = 0.0;
        self.observed = 0;
    }

    /// The histogram the batch adds to.
    pub fn histogram(&self) -> &LatencyHistogram {
        &self.histogram
    }
}

impl Drop for LatencyBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, count, sum) = self.inner.snapshot();
        let exemplars = || {
            let stored = self
                .inner
                .exemplars
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            stored.iter().map(|e| e.map(|e| e.render())).collect()
        };
        splice::with_exemplars(exemplars, || {
            encoder.encode_histogram::<TraceLabel>(sum, count, &buckets, None)
        })
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl StoredExemplar {
    /// The exemplar as OpenMetrics writes it after a bucket's value:
    /// ` # {trace_id="…"} <value> <unix seconds>`.
    fn render(&self) -> String {
        let time = self
            .time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        format!(
            " # {{trace_id=\"{}\"}} {} {}",
            self.trace.trace_id, self.value, time
        )
    }
}

/// A labelled family of latency histograms, e.g. by operation or gRPC method.
pub type LatencyFamily<L> = Family<L, LatencyHistogram, fn() -> LatencyHistogram>;

/// A new [`LatencyFamily`] whose members use [`latency_buckets`].
///
/// Resolve the member once (`family.get_or_create(&labels).clone()`) where the label set
/// is fixed, rather than hashing the labels on every observation.
pub fn latency_family<L>() -> LatencyFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(LatencyHistogram::new as fn() -> LatencyHistogram)
}

/// The exemplar for the current OpenTelemetry context, if its span is sampled.
pub fn current_trace_exemplar() -> Option<TraceLabel> {
    Context::map_current(trace_exemplar)
}

/// The exemplar for `cx`, if its span is valid and sampled.
pub fn trace_exemplar(cx: &Context) -> Option<TraceLabel> {
    if !cx.has_active_span() {
        return None;
    }
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| TraceLabel {
        trace_id: sc.trace_id(),
    })
}

#[cfg(test)]
mod tests;
