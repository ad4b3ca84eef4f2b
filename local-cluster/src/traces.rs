//! A trace viewer for a machine without Jaeger: an OTLP/gRPC receiver that keeps the
//! spans every process exports, grouped by trace, and renders a trace as an indented
//! tree with timings. `local-cluster --traces` runs one and prints each finished message
//! trace; the end-to-end tests use it as their collector.
//!
//! Memory is bounded: at most [`MAX_TRACES`] traces are kept; spans of further traces are
//! counted and dropped.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};

use crate::error::{Error, Result};

/// Where `local-cluster --traces` receives spans (the OTLP/gRPC default port).
pub const LOCAL_OTLP_PORT: u16 = 4317;

/// Traces kept at most.
pub const MAX_TRACES: usize = 10_000;

/// One received span, reduced to what the tree shows and the tests check.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// Who exported it: the `k8s.pod.name` resource attribute (`mqtt-broker-2`), else
    /// `service.name`.
    pub process: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// String and integer attributes, as text.
    pub attributes: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }
}

#[derive(Debug, Default)]
struct Store {
    traces: HashMap<String, (Vec<SpanRecord>, Instant)>,
    dropped: u64,
}

/// The spans received so far. Cheap to clone: clones share the store.
#[derive(Debug, Clone, Default)]
pub struct TraceCollector {
    store: Arc<Mutex<Store>>,
}

impl TraceCollector {
    /// Serves OTLP/gRPC on `addr` (port 0: any free port); returns the collector and the
    /// address it listens on.
    pub async fn start(addr: SocketAddr) -> Result<(TraceCollector, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("binding the trace collector to {addr}")))?;
        let local = listener.local_addr().map_err(Error::io("local_addr"))?;
        let collector = TraceCollector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Ok((collector, local))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, spans: Vec<SpanRecord>) {
        let mut guard = self.lock();
        let store = &mut *guard;
        let now = Instant::now();
        for span in spans {
            let full = store.traces.len() >= MAX_TRACES;
            match store.traces.get_mut(&span.trace_id) {
                Some((kept, seen)) => {
                    kept.push(span);
                    *seen = now;
                }
                None if full => store.dropped += 1,
                None => {
                    store
                        .traces
                        .insert(span.trace_id.clone(), (vec![span], now));
                }
            }
        }
    }

    /// Every span of trace `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        self.lock()
            .traces
            .get(trace_id)
            .map(|(spans, _)| spans.clone())
            .unwrap_or_default()
    }

    /// Every span received so far, of every trace.
    pub fn all(&self) -> Vec<SpanRecord> {
        self.lock()
            .traces
            .values()
            .flat_map(|(spans, _)| spans.iter().cloned())
            .collect()
    }

    /// Spans dropped because [`MAX_TRACES`] traces were kept already.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Removes the traces that received nothing for `quiet` and returns the most recent
    /// one with a span named `root_name` (older finished ones are forgotten).
    pub fn take_finished(&self, quiet: Duration, root_name: &str) -> Option<Vec<SpanRecord>> {
        let mut store = self.lock();
        let now = Instant::now();
        let finished: Vec<String> = store
            .traces
            .iter()
            .filter(|(_, (_, seen))| now.duration_since(*seen) >= quiet)
            .map(|(id, _)| id.clone())
            .collect();
        let mut best: Option<Vec<SpanRecord>> = None;
        for id in finished {
            let Some((spans, _)) = store.traces.remove(&id) else {
                continue;
            };
            if !spans.iter().any(|s| s.name == root_name) {
                continue;
            }
            let start = |s: &[SpanRecord]| s.iter().map(|r| r.start_unix_nanos).min();
            if best.as_deref().is_none_or(|b| start(&spans) > start(b)) {
                best = Some(spans);
            }
        }
        best
    }
}

#[tonic::async_trait]
impl TraceService for TraceCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> std::result::Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut records = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let attributes = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            let find = |key: &str| attributes.iter().find(|kv| kv.key == key).and_then(text);
            let process = find("k8s.pod.name")
                .filter(|p| !p.is_empty())
                .or_else(|| find("service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    records.push(SpanRecord {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        process: process.clone(),
                        start_unix_nanos: span.start_time_unix_nano,
                        end_unix_nanos: span.end_time_unix_nano,
                        attributes: span
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), text(kv)?)))
                            .collect(),
                    });
                }
            }
        }
        self.add(records);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace as an indented tree: each line the offset from the trace's
/// first span, the duration, the span name and the process, children under their
/// parent in start order. Spans whose parent was not received (a client's span, or one
/// still in flight) are shown at the top level.
pub fn render_tree(spans: &[SpanRecord]) -> String {
    let Some(first) = spans.iter().map(|s| s.start_unix_nanos).min() else {
        return String::new();
    };
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
    for span in spans {
        let parent = if ids.contains(span.parent_span_id.as_str()) {
            span.parent_span_id.as_str()
        } else {
            ""
        };
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_unix_nanos);
    }
    let mut out = format!("trace {}\n", spans[0].trace_id);
    let mut stack: Vec<(&SpanRecord, usize)> = children
        .get("")
        .map(|roots| roots.iter().rev().map(|s| (*s, 0)).collect())
        .unwrap_or_default();
    while let Some((span, depth)) = stack.pop() {
        let offset = Duration::from_nanos(span.start_unix_nanos.saturating_sub(first));
        let parent_note = if depth == 0 && !span.parent_span_id.is_empty() {
            format!("  (parent {})", span.parent_span_id)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  +{:>9.3} ms {:>9.3} ms  {}{}  [{}]{}\n",
            offset.as_secs_f64() * 1e3,
            span.duration().as_secs_f64() * 1e3,
            "  ".repeat(depth),
            span.name,
            span.process,
            parent_note,
        ));
        if let Some(kids) = children.get(span.span_id.as_str()) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str, start: u64, end: u64) -> SpanRecord {
        SpanRecord {
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            process: "mqtt-broker-1".into(),
            start_unix_nanos: start,
            end_unix_nanos: end,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn tree_nests_children_under_parents_in_start_order() {
        let spans = vec![
            span("d2", "p", "mqtt.deliver", 3_000_000, 4_000_000),
            span("p", "client", "mqtt.publish", 1_000_000, 2_000_000),
            span("d1", "p", "mqtt.deliver", 2_000_000, 5_000_000),
            span("r", "d1", "mqtt.forward.receive", 2_500_000, 2_600_000),
        ];
        let tree = render_tree(&spans);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines[0], "trace t1");
        assert!(lines[1].contains("mqtt.publish") && lines[1].contains("(parent client)"));
        assert!(lines[1].contains("+    0.000 ms     1.000 ms"), "{tree}");
        assert!(lines[2].contains("    mqtt.deliver") && lines[2].contains("+    1.000 ms"));
        assert!(lines[3].contains("      mqtt.forward.receive"), "{tree}");
        assert!(lines[4].contains("+    2.000 ms") && lines[4].contains("mqtt.deliver"));
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn finished_traces_are_taken_once_and_only_with_the_root_name() {
        let collector = TraceCollector::default();
        collector.add(vec![span("p", "", "mqtt.publish", 1, 2)]);
        let mut other = span("x", "", "raft.append", 1, 2);
        other.trace_id = "t2".into();
        collector.add(vec![other]);
        assert_eq!(collector.all().len(), 2);
        let taken = collector
            .take_finished(Duration::ZERO, "mqtt.publish")
            .unwrap();
        assert_eq!(taken[0].span_id, "p");
        assert!(collector
            .take_finished(Duration::ZERO, "mqtt.publish")
            .is_none());
        assert!(
            collector.all().is_empty(),
            "the other finished trace is forgotten"
        );
    }
}
