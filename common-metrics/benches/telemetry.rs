//! Hot-path costs of telemetry: what one counter increment, one histogram observation,
//! one span and one log line cost a service.
//!
//! Spans are measured under the subscriber shapes a service runs with: no OpenTelemetry
//! layer at all (baseline), the default install without an exporter (provider with no
//! processor), and a batch exporter (to a no-op sink, so the network is not measured)
//! with sampling at 0 % and 100 %.

use std::hint::black_box;
use std::time::Duration;

use common_metrics::logging::{log_layer, LogFormat};
use common_metrics::{latency_family, LatencyBatch, LatencyHistogram};
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// Drops every batch: measures the span pipeline up to the exporter, not the network.
#[derive(Debug)]
struct NullExporter;

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// Registry + OpenTelemetry layer over `provider`.
fn traced(provider: &SdkTracerProvider) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(common_metrics::otel::tracing_layer(provider)),
    )
}

fn exporting(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(NullExporter).build())
        .with_sampler(sampler)
        .build()
}

fn metrics(c: &mut Criterion) {
    let counter = Counter::<u64>::default();
    c.bench_function("counter/inc", |b| b.iter(|| counter.inc()));

    let histogram = LatencyHistogram::new();
    c.bench_function("histogram/observe/no_span", |b| {
        b.iter(|| histogram.observe(black_box(0.0012)))
    });

    let mut batch = LatencyBatch::new(histogram.clone());
    c.bench_function("histogram/batch_observe_flush_every_16", |b| {
        let mut n = 0u32;
        b.iter(|| {
            batch.observe(black_box(0.0012));
            n += 1;
            if n.is_multiple_of(16) {
                batch.flush();
            }
        })
    });

    let family = latency_family::<Vec<(&'static str, &'static str)>>();
    let labels = vec![("op", "append")];
    c.bench_function("histogram/family_lookup_and_observe", |b| {
        b.iter(|| family.get_or_create(&labels).observe(black_box(0.0012)))
    });

    let provider = SdkTracerProvider::builder().build();
    let dispatch = traced(&provider);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("publish");
        let _entered = span.enter();
        c.bench_function("histogram/observe/sampled_span_exemplar", |b| {
            b.iter(|| histogram.observe(black_box(0.0012)))
        });
    });

    let unsampled = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .build();
    tracing::dispatcher::with_default(&traced(&unsampled), || {
        let span = tracing::info_span!("publish");
        let _entered = span.enter();
        c.bench_function("histogram/observe/unsampled_span", |b| {
            b.iter(|| histogram.observe(black_box(0.0012)))
        });
    });
}

/// Observations from two threads at once into one histogram, as two runtime workers
/// delivering to subscribers of the same topic do: [`LatencyHistogram`] (per-thread
/// shards) side by side with prometheus-client's `HistogramWithExemplars` (a lock per
/// observation). Reports the time per observation on each thread.
fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram/observe_from_2_threads");
    let ours = LatencyHistogram::new();
    group.bench_function("latency_histogram", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                let ours = ours.clone();
                move || ours.observe_untraced(black_box(0.0012))
            })
        })
    });
    let theirs =
        HistogramWithExemplars::<Vec<(String, String)>>::new(common_metrics::latency_buckets());
    group.bench_function("prometheus_client_with_exemplars", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                let theirs = theirs.clone();
                move || theirs.observe(black_box(0.0012), None, None)
            })
        })
    });
    group.finish();
}

/// Runs `iters` calls of the closure `make()` returns on each of two threads, started
/// together; the slower thread's time.
fn on_two_threads<F: FnMut() + Send + 'static>(
    iters: u64,
    mut make: impl FnMut() -> F,
) -> Duration {
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut observe = make();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let began = std::time::Instant::now();
                for _ in 0..iters {
                    observe();
                }
                began.elapsed()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span/create_enter_close");
    let span_once = || {
        let span = tracing::info_span!("mqtt.publish", qos = 1u8);
        span.in_scope(|| black_box(()));
    };

    tracing::dispatcher::with_default(&Dispatch::new(tracing_subscriber::registry()), || {
        group.bench_function("no_otel_layer", |b| b.iter(span_once));
    });

    let no_exporter = SdkTracerProvider::builder().build();
    tracing::dispatcher::with_default(&traced(&no_exporter), || {
        group.bench_function("no_exporter", |b| b.iter(span_once));
    });

    let ratio0 = exporting(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        0.0,
    ))));
    tracing::dispatcher::with_default(&traced(&ratio0), || {
        group.bench_function("batch_export_sampled_0pct", |b| b.iter(span_once));
    });

    let ratio100 = exporting(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        1.0,
    ))));
    tracing::dispatcher::with_default(&traced(&ratio100), || {
        group.bench_function("batch_export_sampled_100pct", |b| b.iter(span_once));
    });
    group.finish();
    // The batch queue is bounded (2048): at benchmark rates it is full most of the time
    // and spans are dropped, which is the designed behaviour under overload.
    let _ = ratio0.shutdown();
    let _ = ratio100.shutdown();
}

fn logs(c: &mut Criterion) {
    let provider = SdkTracerProvider::builder().build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(common_metrics::otel::tracing_layer(&provider))
            .with(log_layer(LogFormat::Json, false, std::io::sink)),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("mqtt.publish", client_id = "c-1", qos = 1u8);
        let _entered = span.enter();
        c.bench_function("log/json_line_in_span", |b| {
            b.iter(|| tracing::info!(topic = "a/b", password = "x", "delivered"))
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = metrics, contended, spans, logs
}
criterion_main!(benches);
