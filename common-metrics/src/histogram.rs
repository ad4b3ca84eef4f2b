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

use std::time::{Instant, SystemTime};

use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry::Context;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelSetEncoder, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
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
    inner: HistogramWithExemplars<TraceLabel>,
}

impl LatencyHistogram {
    /// A histogram with [`latency_buckets`].
    pub fn new() -> Self {
        Self::with_buckets(latency_buckets())
    }

    /// A histogram with custom bucket bounds, in seconds.
    pub fn with_buckets(buckets: impl Iterator<Item = f64>) -> Self {
        LatencyHistogram {
            inner: HistogramWithExemplars::new(buckets),
        }
    }

    /// Records `seconds`, with the current sampled trace (if any) as exemplar.
    pub fn observe(&self, seconds: f64) {
        let exemplar = current_trace_exemplar();
        // Exemplar timestamps let Prometheus tell a new exemplar from the one it scraped
        // last time; the clock is read only when an exemplar is attached.
        let time = exemplar.is_some().then(SystemTime::now);
        self.inner.observe(seconds, exemplar, time);
    }

    /// Records `seconds` with no exemplar: for a measurement known to belong to no trace
    /// (an untraced message), without looking up the current context.
    pub fn observe_untraced(&self, seconds: f64) {
        self.inner.observe(seconds, None, None);
    }

    /// Records the time elapsed since `start`.
    pub fn observe_duration(&self, start: Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }

    /// Records `seconds` with the trace of `cx` as exemplar, for work measured outside its
    /// span (e.g. a message's end-to-end latency against its creation context).
    pub fn observe_in(&self, seconds: f64, cx: &Context) {
        let exemplar = trace_exemplar(cx);
        let time = exemplar.is_some().then(SystemTime::now);
        self.inner.observe(seconds, exemplar, time);
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
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.inner.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
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
    use crate::testing::{capture_spans_with, parse_metrics};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::Sampler;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    fn encoded(histogram: &LatencyHistogram) -> String {
        let mut registry = Registry::default();
        registry.register("op_latency_seconds", "Latency", histogram.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
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
