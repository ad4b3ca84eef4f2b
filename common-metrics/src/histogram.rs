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

use std::cell::RefCell;
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
        SPLICE.with_borrow_mut(|splice| {
            if let Some(splice) = splice.as_mut() {
                let exemplars = self
                    .inner
                    .exemplars
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if exemplars.iter().any(Option::is_some) {
                    splice.pending = exemplars.iter().map(|e| e.map(|e| e.render())).collect();
                    splice.bucket = 0;
                }
            }
        });
        let result = encoder.encode_histogram::<TraceLabel>(sum, count, &buckets, None);
        SPLICE.with_borrow_mut(|splice| {
            if let Some(splice) = splice.as_mut() {
                splice.pending.clear();
            }
        });
        result
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

/// What [`ExemplarWriter`] splices into the histogram being encoded.
#[derive(Debug, Default)]
struct Splice {
    /// The rendered exemplar of each bucket of the histogram being encoded (empty when
    /// none is being encoded).
    pending: Vec<Option<String>>,
    /// The bucket line the writer is on.
    bucket: usize,
}

thread_local! {
    /// Set while an [`ExemplarWriter`] encodes on this thread.
    static SPLICE: RefCell<Option<Splice>> = const { RefCell::new(None) };
}

/// A `fmt::Write` that adds each [`LatencyHistogram`]'s exemplars to its bucket lines
/// while a registry is encoded into it (see the module documentation).
#[derive(Debug)]
pub struct ExemplarWriter {
    out: String,
    /// Where the line being written starts in `out`.
    line_start: usize,
}

impl ExemplarWriter {
    /// Runs `encode` with a writer that splices exemplars, and returns the text.
    pub fn encode(
        capacity: usize,
        encode: impl FnOnce(&mut ExemplarWriter) -> std::fmt::Result,
    ) -> Result<String, std::fmt::Error> {
        let mut writer = ExemplarWriter {
            out: String::with_capacity(capacity),
            line_start: 0,
        };
        let outer = SPLICE.replace(Some(Splice::default()));
        let result = encode(&mut writer);
        SPLICE.set(outer);
        result.map(|()| writer.out)
    }

    /// Ends the current line, first appending the pending exemplar if the line is a
    /// bucket of the histogram being encoded.
    fn end_line(&mut self) {
        let line = &self.out[self.line_start..];
        let exemplar = SPLICE.with_borrow_mut(|splice| {
            let splice = splice.as_mut().filter(|s| !s.pending.is_empty())?;
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            if !line[..name_end].ends_with("_bucket") {
                return None;
            }
            let exemplar = splice.pending.get_mut(splice.bucket)?.take();
            splice.bucket += 1;
            exemplar
        });
        if let Some(exemplar) = exemplar {
            self.out.push_str(&exemplar);
        }
        self.out.push('\n');
        self.line_start = self.out.len();
    }
}

impl std::fmt::Write for ExemplarWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(newline) = rest.find('\n') {
            self.out.push_str(&rest[..newline]);
            self.end_line();
            rest = &rest[newline + 1..];
        }
        self.out.push_str(rest);
        Ok(())
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
mod tests {
    use super::*;
    use crate::exposition::{encode_registry, Format};
    use crate::testing::{capture_spans_with, parse_metrics};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::Sampler;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    fn encoded(histogram: &LatencyHistogram) -> String {
        let mut registry = Registry::default();
        registry.register("op_latency_seconds", "Latency", histogram.clone());
        encode_registry(&registry, Format::OpenMetrics).unwrap()
    }

    #[test]
    fn buckets_span_50us_to_10s() {
        let buckets: Vec<f64> = latency_buckets().collect();
        assert_eq!(buckets.first(), Some(&0.000_05));
        assert_eq!(buckets.last(), Some(&10.0));
        assert!((16..=20).contains(&buckets.len()));
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn no_span_no_exemplar() {
        let histogram = LatencyHistogram::new();
        histogram.observe(0.003);
        let text = encoded(&histogram);
        assert!(!text.contains("trace_id"), "{text}");
        assert!(text.contains("op_latency_seconds_count 1"), "{text}");
    }

    #[test]
    fn sampled_span_sets_exemplar() {
        let capture = capture_spans_with(Sampler::AlwaysOn);
        let histogram = LatencyHistogram::new();
        let span = tracing::info_span!("work");
        let trace_id = span.context().span().span_context().trace_id();
        span.in_scope(|| histogram.observe(0.003));
        let samples = parse_metrics(&encoded(&histogram));
        let bucket = samples
            .iter()
            .find(|s| s.name == "op_latency_seconds_bucket" && s.labels["le"] == "0.005")
            .expect("bucket");
        let exemplar = bucket.exemplar.as_ref().expect("exemplar");
        assert_eq!(exemplar.labels["trace_id"], trace_id.to_string());
        assert_eq!(exemplar.value, 0.003);
        drop(capture);
    }

    #[test]
    fn unsampled_span_sets_no_exemplar() {
        let _capture = capture_spans_with(Sampler::AlwaysOff);
        let histogram = LatencyHistogram::new();
        tracing::info_span!("work").in_scope(|| histogram.observe(0.003));
        assert!(!encoded(&histogram).contains("trace_id"));
    }

    #[test]
    fn untraced_observation_ignores_the_current_span() {
        let capture = capture_spans_with(Sampler::AlwaysOn);
        let histogram = LatencyHistogram::new();
        tracing::info_span!("work").in_scope(|| histogram.observe_untraced(0.003));
        let text = encoded(&histogram);
        assert!(!text.contains("trace_id"), "{text}");
        assert!(text.contains("op_latency_seconds_count 1"), "{text}");
        drop(capture);
    }

    #[test]
    fn explicit_context_exemplar() {
        let sc = SpanContext::new(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let histogram = LatencyHistogram::new();
        histogram.observe_in(0.2, &cx);
        assert!(encoded(&histogram).contains("trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    }

    #[test]
    fn observations_from_many_threads_all_count() {
        let histogram = LatencyHistogram::new();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        // Half in the 50 µs bucket, half in the 1 s bucket.
                        histogram.observe_untraced(if i % 2 == 0 { 0.000_01 } else { 1.0 });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let samples = parse_metrics(&encoded(&histogram));
        let value = |name: &str, le: Option<&str>| {
            samples
                .iter()
                .find(|s| s.name == name && s.labels.get("le").map(String::as_str) == le)
                .map(|s| s.value)
        };
        assert_eq!(value("op_latency_seconds_count", None), Some(80_000.0));
        assert_eq!(
            value("op_latency_seconds_bucket", Some("+Inf")),
            Some(80_000.0)
        );
        assert_eq!(
            value("op_latency_seconds_bucket", Some("0.00005")),
            Some(40_000.0)
        );
        assert_eq!(
            value("op_latency_seconds_bucket", Some("0.5")),
            Some(40_000.0)
        );
        assert_eq!(
            value("op_latency_seconds_bucket", Some("1.0")),
            Some(80_000.0)
        );
        let sum = value("op_latency_seconds_sum", None).unwrap();
        assert!((sum - 40_000.4).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn a_batch_adds_what_it_gathered_when_flushed_or_dropped() {
        let histogram = LatencyHistogram::with_buckets([0.1, 0.2].into_iter());
        let mut batch = LatencyBatch::new(histogram.clone());
        batch.observe(0.05);
        batch.observe(0.15);
        batch.observe(0.15);
        let count = |h: &LatencyHistogram| {
            crate::testing::find(&parse_metrics(&encoded(h)), "op_latency_seconds_count", &[])
        };
        assert_eq!(count(&histogram), Some(0.0), "nothing before the flush");
        batch.flush();
        assert_eq!(count(&histogram), Some(3.0));
        batch.observe(1.0);
        drop(batch);
        let samples = parse_metrics(&encoded(&histogram));
        let bucket =
            |le: &str| crate::testing::find(&samples, "op_latency_seconds_bucket", &[("le", le)]);
        assert_eq!(bucket("0.1"), Some(1.0));
        assert_eq!(bucket("0.2"), Some(3.0));
        assert_eq!(bucket("+Inf"), Some(4.0));
        let sum = crate::testing::find(&samples, "op_latency_seconds_sum", &[]).unwrap();
        assert!((sum - 1.35).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn a_bound_belongs_to_its_own_bucket_and_nan_to_inf() {
        let histogram = LatencyHistogram::with_buckets([0.1, 0.2].into_iter());
        histogram.observe_untraced(0.1);
        histogram.observe_untraced(f64::NAN);
        histogram.observe_untraced(0.3);
        let samples = parse_metrics(&encoded(&histogram));
        let bucket =
            |le: &str| crate::testing::find(&samples, "op_latency_seconds_bucket", &[("le", le)]);
        assert_eq!(bucket("0.1"), Some(1.0));
        assert_eq!(bucket("0.2"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(3.0));
    }

    /// Exemplars land on their own histogram's buckets, not on a neighbour's (here a
    /// family member without exemplars and prometheus-client's own histogram).
    #[test]
    fn exemplars_stay_on_their_own_bucket_lines() {
        let sc = SpanContext::new(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let family = latency_family::<Vec<(&'static str, &'static str)>>();
        family
            .get_or_create(&vec![("op", "a")])
            .observe_untraced(0.2);
        family
            .get_or_create(&vec![("op", "b")])
            .observe_in(2.0, &cx);
        family
            .get_or_create(&vec![("op", "c")])
            .observe_untraced(0.2);
        let plain = prometheus_client::metrics::histogram::Histogram::new([1.0, 5.0]);
        plain.observe(2.0);
        let mut registry = Registry::default();
        registry.register("before", "Plain", plain.clone());
        registry.register("op_latency_seconds", "Latency", family);
        registry.register("after", "Plain", plain);
        let text = encode_registry(&registry, Format::OpenMetrics).unwrap();
        let with_exemplar: Vec<&str> = text.lines().filter(|l| l.contains(" # {")).collect();
        assert_eq!(with_exemplar.len(), 1, "{text}");
        assert!(
            with_exemplar[0].starts_with("op_latency_seconds_bucket{le=\"2.5\",op=\"b\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 2 "),
            "{text}"
        );
        // Encoded by any other writer: the same counts, no exemplars.
        let mut plain_text = String::new();
        encode(&mut plain_text, &registry).unwrap();
        assert!(!plain_text.contains(" # {"), "{plain_text}");
        let strip = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.split(" # {").next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(strip(&text), strip(&plain_text));
    }

    #[test]
    fn family_members_use_latency_buckets() {
        let family = latency_family::<Vec<(String, String)>>();
        family
            .get_or_create(&vec![("op".into(), "append".into())])
            .observe(0.01);
        let mut registry = Registry::default();
        registry.register("op_latency_seconds", "Latency", family);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let samples = parse_metrics(&text);
        let count = crate::testing::find(&samples, "op_latency_seconds_count", &[("op", "append")]);
        assert_eq!(count, Some(1.0), "{text}");
        let buckets = samples
            .iter()
            .filter(|s| s.name == "op_latency_seconds_bucket")
            .count();
        assert_eq!(buckets, LATENCY_BUCKETS.len() + 1, "{text}");
    }
}
