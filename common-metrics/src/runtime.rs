//! Tokio runtime metrics (`robustmq_tokio_*`), read from the stable `RuntimeMetrics` API on
//! each scrape.
//!
//! Only the stable subset is used (no `tokio_unstable` cfg): workers, alive tasks, global
//! queue depth, total busy time and park count. A busy *ratio* is a query, not a gauge:
//! `rate(robustmq_tokio_worker_busy_seconds_total[1m]) / robustmq_tokio_workers`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use tokio::runtime::Handle;

/// Collects metrics of one Tokio runtime.
#[derive(Debug)]
pub struct RuntimeCollector {
    /// The runtime to observe. `None` when the registry was built outside a runtime; then
    /// the runtime that runs the scrape is observed, which is the service's runtime in the
    /// usual one-runtime process.
    handle: Option<Handle>,
}

impl RuntimeCollector {
    /// Observes the runtime of `handle`.
    pub fn new(handle: Handle) -> Self {
        RuntimeCollector {
            handle: Some(handle),
        }
    }

    /// Observes the current runtime if there is one, else whichever runtime scrapes.
    pub fn current() -> Self {
        RuntimeCollector {
            handle: Handle::try_current().ok(),
        }
    }
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(handle) = self.handle.clone().or_else(|| Handle::try_current().ok()) else {
            return Ok(());
        };
        let metrics = handle.metrics();
        let workers = metrics.num_workers();
        let busy: f64 = (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w).as_secs_f64())
            .sum();
        let parks: u64 = (0..workers).map(|w| metrics.worker_park_count(w)).sum();

        let gauges = [
            (
                "robustmq_tokio_workers",
                "Number of Tokio worker threads",
                workers as i64,
            ),
            (
                "robustmq_tokio_alive_tasks",
                "Number of alive Tokio tasks",
                metrics.num_alive_tasks() as i64,
            ),
            (
                "robustmq_tokio_global_queue_depth",
                "Number of tasks waiting in the Tokio global (injection) queue",
                metrics.global_queue_depth() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(e)?;
        }

        let busy = ConstCounter::new(busy);
        let e = encoder.encode_descriptor(
            "robustmq_tokio_worker_busy",
            "Time Tokio workers spent busy, summed over workers",
            Some(&Unit::Seconds),
            busy.metric_type(),
        )?;
        busy.encode(e)?;

        let parks = ConstCounter::new(parks);
        let e = encoder.encode_descriptor(
            "robustmq_tokio_worker_park",
            "Times Tokio workers parked (went idle), summed over workers",
            None,
            parks.metric_type(),
        )?;
        parks.encode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encodes_runtime_metrics() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RuntimeCollector::current()));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("\nrobustmq_tokio_workers 2\n"), "{text}");
        assert!(text.contains("robustmq_tokio_alive_tasks "), "{text}");
        assert!(
            text.contains("robustmq_tokio_global_queue_depth "),
            "{text}"
        );
        assert!(
            text.contains("robustmq_tokio_worker_busy_seconds_total "),
            "{text}"
        );
        assert!(text.contains("robustmq_tokio_worker_park_total "), "{text}");
    }

    #[test]
    fn outside_a_runtime_it_is_empty() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RuntimeCollector::current()));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert_eq!(text, "# EOF\n");
    }
}
