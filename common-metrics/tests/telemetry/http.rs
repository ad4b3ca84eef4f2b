//! `/metrics`, `/healthz` and `/readyz` scraped over real HTTP on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use common_metrics::exposition::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use common_metrics::testing::{capture_spans, find, parse_metrics};
use common_metrics::{namespaced, new_registry, serve, Identity, LatencyHistogram, Readiness};
use opentelemetry::trace::TraceContextExt;
use prometheus_client::registry::Unit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A response: status, lower-cased headers, body.
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One HTTP/1.1 GET with `Connection: close`, read to the end.
async fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> anyhow::Result<Response> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(accept) = accept {
        request.push_str(&format!("Accept: {accept}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| anyhow::anyhow!("no status line"))?
        .parse()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    anyhow::ensure!(
        !headers.contains_key("transfer-encoding"),
        "expected a content-length body"
    );
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The structural OpenMetrics rules a scraper enforces: ends with `# EOF`, and every
/// sample belongs to a family declared by a `# TYPE` line before it.
fn assert_openmetrics(text: &str) {
    assert!(text.ends_with("# EOF\n"), "missing EOF");
    let mut families: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                families.iter().any(|f| name.starts_with(f)),
                "sample {name} has no TYPE line before it"
            );
        }
    }
}

#[tokio::test]
async fn metrics_scrape_with_content_negotiation() -> anyhow::Result<()> {
    let capture = capture_spans();
    let identity = Identity {
        service: "mqtt-broker".into(),
        pod: "mqtt-broker-0".into(),
        namespace: "robustmq".into(),
        node: "kind-worker".into(),
        cluster: "kind".into(),
        version: "9.9.9".into(),
    };
    let mut registry = new_registry(&identity, true);
    let latency = LatencyHistogram::new();
    namespaced(&mut registry).register_with_unit(
        "message_latency",
        "Publish to delivery latency",
        Unit::Seconds,
        latency.clone(),
    );
    let span = tracing::info_span!("mqtt.publish");
    let trace_id = span.context().span().span_context().trace_id();
    span.in_scope(|| latency.observe(0.002));
    drop(span);

    let readiness = Readiness::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(registry),
        readiness.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    // What Prometheus 2.x/3.x sends: OpenMetrics preferred.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = get(addr, "/metrics", Some(accept)).await?;
    assert_eq!(om.status, 200);
    assert_eq!(om.headers["content-type"], OPENMETRICS_CONTENT_TYPE);
    assert_openmetrics(&om.body);
    let samples = parse_metrics(&om.body);
    let who = [
        ("service", "mqtt-broker"),
        ("pod", "mqtt-broker-0"),
        ("namespace", "robustmq"),
        ("node", "kind-worker"),
        ("cluster", "kind"),
    ];
    let mut info = who.to_vec();
    info.push(("version", "9.9.9"));
    assert_eq!(find(&samples, "robustmq_build_info", &info), Some(1.0));
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "robustmq_tokio_workers",
        "robustmq_tokio_alive_tasks",
    ] {
        assert!(
            find(&samples, name, &who).is_some(),
            "{name} missing:\n{}",
            om.body
        );
    }
    assert!(om
        .body
        .contains("# UNIT robustmq_message_latency_seconds seconds"));
    assert_eq!(
        find(&samples, "robustmq_message_latency_seconds_count", &who),
        Some(1.0)
    );
    let bucket = samples
        .iter()
        .find(|s| s.name == "robustmq_message_latency_seconds_bucket" && s.labels["le"] == "0.0025")
        .expect("2.5 ms bucket");
    let exemplar = bucket
        .exemplar
        .as_ref()
        .expect("exemplar on the bucket observed");
    assert_eq!(exemplar.labels["trace_id"], trace_id.to_string());

    // curl, or a scraper that only knows the 0.0.4 text format.
    for accept in [None, Some("text/plain"), Some("text/plain;version=0.0.4")] {
        let text = get(addr, "/metrics", accept).await?;
        assert_eq!(text.status, 200);
        assert_eq!(text.headers["content-type"], PROMETHEUS_CONTENT_TYPE);
        assert!(!text.body.contains("# EOF") && !text.body.contains("# UNIT"));
        assert!(!text.body.contains(" # {"), "exemplars must be stripped");
        assert!(text
            .body
            .contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(text
            .body
            .contains("# TYPE robustmq_message_latency_seconds histogram\n"));
        assert_eq!(
            find(&parse_metrics(&text.body), "robustmq_build_info", &info),
            Some(1.0)
        );
    }

    let health = get(addr, "/healthz", None).await?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let not_ready = get(addr, "/readyz", None).await?;
    assert_eq!(not_ready.status, 503);
    assert!(not_ready.body.contains("starting"), "{}", not_ready.body);
    readiness.set_not_ready("no raft leader");
    assert!(get(addr, "/readyz", None)
        .await?
        .body
        .contains("no raft leader"));
    readiness.set_ready(true);
    assert_eq!(get(addr, "/readyz", None).await?.status, 200);

    stop.send(()).ok();
    server.await??;
    drop(capture);
    Ok(())
}
