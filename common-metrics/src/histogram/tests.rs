//! Unit tests of the latency histogram, its batch and its exemplars.

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

/// A context whose sampled span is remote, trace `4bf92f35…4736`.
fn sampled_remote_context() -> Context {
    let sc = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(sc)
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
    let cx = sampled_remote_context();
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
    let cx = sampled_remote_context();
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
