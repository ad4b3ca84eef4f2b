//! The shipped monitoring files are valid and complete: promtool and amtool accept them,
//! every alert is labelled, documented in the runbook and unit-tested, the
//! PrometheusRule is the rules file, and every dashboard panel has what Grafana users
//! need (datasource variable, unit, description).

use std::process::Command;
use std::time::Duration;

use cluster_tests::prometheus::{require_program, Prometheus};
use local_cluster::ClusterPlan;
use serde_json::Value;

use crate::expressions::{dashboards, panels, repo_root};

const RULES: &str = "deploy/prometheus/rules/robustmq.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/rules/robustmq.rules.test.yml";
const PROMETHEUS_RULE: &str = "deploy/k8s/base/monitoring/prometheusrule.yaml";
const DASHBOARD_CONFIGMAPS: &str = "deploy/k8s/base/monitoring/grafana-dashboards.yaml";
const K8S_MONITORING: &str = "deploy/k8s/base/monitoring";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yml";
const RUNBOOK: &str = "deploy/runbook.md";

/// Runs `program args` in the repository root; panics with its output unless it succeeds.
fn run_ok(program: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let promtool = require_program("promtool", "prometheus");
    let checked = run_ok(&promtool, &["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_ok(&promtool, &["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    println!("{tested}");
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let amtool = require_program("amtool", "prometheus-alertmanager");
    let checked = run_ok(&amtool, &["check-config", ALERTMANAGER]);
    assert!(checked.contains("SUCCESS"), "{checked}");
}

/// The PrometheusRule for Kubernetes: the rules file as its `spec`, under kube-prometheus'
/// selector labels.
fn render_prometheus_rule(rules: &str) -> String {
    let mut out = String::from(
        "# Generated from deploy/prometheus/rules/robustmq.rules.yml by the monitoring tests;\n\
         # do not edit: change the rules file and run\n\
         #   UPDATE_DEPLOY=1 cargo test -p cluster-tests --test monitoring prometheus_rule\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  \
           name: robustmq\n  \
           labels:\n    \
             app.kubernetes.io/name: robustmq\n    \
             app.kubernetes.io/component: monitoring\n    \
             # kube-prometheus' Prometheus selects rules by these two.\n    \
             prometheus: k8s\n    \
             role: alert-rules\n\
         spec:\n",
    );
    let body = rules
        .lines()
        .skip_while(|line| !line.starts_with("groups:"));
    for line in body {
        if line.is_empty() {
            out.push('\n');
        } else {
            out += &format!("  {line}\n");
        }
    }
    out
}

/// Compares the generated file `path` with `expected`; with `UPDATE_DEPLOY` set,
/// rewrites it first.
fn check_generated(path: &str, expected: &str, source: &str) {
    let file = repo_root().join(path);
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, expected).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == expected,
        "{path} is not the rendering of {source}: run\n  \
         UPDATE_DEPLOY=1 cargo test -p cluster-tests --test monitoring generated"
    );
}

#[test]
fn generated_prometheus_rule_is_the_rules_file() {
    let rules = std::fs::read_to_string(repo_root().join(RULES)).expect("rules file");
    check_generated(PROMETHEUS_RULE, &render_prometheus_rule(&rules), RULES);
}

/// One ConfigMap per dashboard (each well under the 256 KiB that client-side
/// `kubectl apply` can annotate), labelled for Grafana's dashboard sidecar.
fn render_dashboard_configmaps() -> String {
    let mut out = String::from(
        "# Generated from deploy/grafana/dashboards/*.json by the monitoring tests; do not\n\
         # edit: change deploy/grafana/generate.py, run it, then\n\
         #   UPDATE_DEPLOY=1 cargo test -p cluster-tests --test monitoring generated\n\
         # Grafana's sidecar (kube-prometheus-stack) loads every ConfigMap labelled\n\
         # grafana_dashboard: \"1\".\n",
    );
    let dir = repo_root().join("deploy/grafana/dashboards");
    for (file, _) in dashboards() {
        let json = std::fs::read_to_string(dir.join(&file)).expect("dashboard");
        let name = format!("robustmq-dashboard-{}", file.trim_end_matches(".json"));
        out += &format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    \
             app.kubernetes.io/name: robustmq\n    app.kubernetes.io/component: monitoring\n    \
             grafana_dashboard: \"1\"\n  annotations:\n    grafana_folder: RobustMQ\ndata:\n  {file}: |\n"
        );
        for line in json.lines() {
            out += &format!("    {line}\n");
        }
    }
    out
}

#[test]
fn generated_dashboard_configmaps_are_the_dashboards() {
    check_generated(
        DASHBOARD_CONFIGMAPS,
        &render_dashboard_configmaps(),
        "deploy/grafana/dashboards",
    );
}

/// `kubectl kustomize` (kubectl's built-in kustomize) renders the monitoring objects.
#[test]
fn kustomize_renders_the_monitoring_objects() {
    let kubectl = require_program("kubectl", "kubectl (on the machine image)");
    let rendered = run_ok(&kubectl, &["kustomize", K8S_MONITORING]);
    assert_eq!(
        rendered.matches("kind: PrometheusRule").count(),
        1,
        "{rendered}"
    );
    assert_eq!(
        rendered.matches("kind: ConfigMap").count(),
        dashboards().len(),
        "{rendered}"
    );
    assert_eq!(
        rendered.matches("grafana_dashboard: \"1\"").count(),
        dashboards().len()
    );
}

/// Every alerting rule, as Prometheus parsed it (the rules file loaded by a real
/// Prometheus with nothing to scrape).
async fn parsed_alerts() -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = ClusterPlan::ephemeral(dir.path().join("cluster")).expect("free ports");
    let prometheus = Prometheus::start(&plan, Duration::from_secs(60)).await;
    let groups = prometheus.rule_groups().await;
    assert!(
        !groups.is_empty(),
        "no rule groups loaded:\n{}",
        prometheus.log_tail()
    );
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "alerting")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_has_severity_summary_description_runbook_and_unit_tests() {
    let root = repo_root();
    let runbook = std::fs::read_to_string(root.join(RUNBOOK)).expect("runbook");
    let unit_tests = std::fs::read_to_string(root.join(RULE_TESTS)).expect("rule tests");
    let alerts = parsed_alerts().await;
    assert!(alerts.len() >= 15, "only {} alerts", alerts.len());
    let mut problems = Vec::new();
    for alert in &alerts {
        let name = alert["name"].as_str().unwrap_or_default();
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        if !["critical", "warning", "info"].contains(&severity) {
            problems.push(format!("{name}: severity {severity:?}"));
        }
        for key in ["summary", "description"] {
            if alert["annotations"][key]
                .as_str()
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                problems.push(format!("{name}: no {key}"));
            }
        }
        let runbook_url = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let anchor = format!("{RUNBOOK}#{}", name.to_lowercase());
        if runbook_url != anchor {
            problems.push(format!(
                "{name}: runbook_url {runbook_url:?}, want {anchor:?}"
            ));
        }
        if !runbook.contains(&format!("\n## {name}\n")) {
            problems.push(format!("{name}: no `## {name}` section in {RUNBOOK}"));
        }
        if !unit_tests.contains(&format!("alertname: {name}\n")) {
            problems.push(format!("{name}: no unit test in {RULE_TESTS}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_panel_has_datasource_variable_unit_and_description() {
    let mut problems = Vec::new();
    for (file, dashboard) in dashboards() {
        let vars: Vec<&Value> = dashboard["templating"]["list"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let var = |name: &str| vars.iter().find(|v| v["name"] == name);
        match var("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => problems.push(format!("{file}: no Prometheus `datasource` variable")),
        }
        for name in ["cluster", "namespace", "pod"] {
            if var(name).is_none() {
                problems.push(format!("{file}: no `{name}` variable"));
            }
        }
        if dashboard["schemaVersion"].as_i64().unwrap_or(0) < 36 {
            problems.push(format!("{file}: schemaVersion below 36"));
        }
        let uses_variable = |ds: &Value| ds["uid"] == "${datasource}";
        for panel in panels(&dashboard) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or("<untitled>");
            let at = format!("{file}: panel {title:?}");
            if panel["description"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                problems.push(format!("{at}: no description"));
            }
            if panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                problems.push(format!("{at}: no unit"));
            }
            if !uses_variable(&panel["datasource"]) {
                problems.push(format!("{at}: datasource is not ${{datasource}}"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{at}: no queries"));
            }
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                if expr.trim().is_empty() {
                    problems.push(format!("{at}: a query without expr"));
                }
                if !uses_variable(&target["datasource"]) {
                    problems.push(format!("{at}: a query's datasource is not ${{datasource}}"));
                }
                if expr.contains("_bucket") && target["exemplar"] != true {
                    problems.push(format!("{at}: latency query without exemplars: {expr}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn prometheus_rule_keeps_every_line_of_the_rules() {
    let rules = "# comment\ngroups:\n  - name: g\n    rules:\n\n      - record: x\n";
    let rendered = render_prometheus_rule(rules);
    assert!(rendered
        .ends_with("spec:\n  groups:\n    - name: g\n      rules:\n\n        - record: x\n"));
    assert!(!rendered.contains("# comment"));
}

/// Sends an HTTP/1.0 request to `addr`; the status code and the body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// POSTs `body` (JSON) to `path` on `addr`; the status code.
async fn post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    http(addr, "POST", path, body).await.0
}

/// The shipped Alertmanager config, run the way `local-cluster --alertmanager` runs it:
/// a critical alert reaches the webhook at once, and the alert it inhibits does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_routes_critical_alerts_to_the_webhook_and_inhibits() {
    require_program("prometheus-alertmanager", "prometheus-alertmanager");
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = ClusterPlan::ephemeral(dir.path().join("cluster")).expect("free ports");
    let webhook = local_cluster::alertmanager::Webhook::serve(plan.alert_webhook, false)
        .await
        .expect("webhook");
    let _alertmanager = local_cluster::alertmanager::start(&plan)
        .await
        .expect("alertmanager starts")
        .expect("alertmanager is installed");
    let alert = |name: &str, cluster: &str| {
        format!(
            r#"{{"labels": {{"alertname": "{name}", "severity": "critical", "cluster": "{cluster}",
                "namespace": "default"}}, "annotations": {{"summary": "{name} in {cluster}"}}}}"#
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let named = |name: &str, cluster: &str| {
        webhook.received().iter().any(|a| {
            a.labels.get("alertname").map(String::as_str) == Some(name)
                && a.labels.get("cluster").map(String::as_str) == Some(cluster)
        })
    };
    let wait_for = |name: &'static str, cluster: &'static str| {
        let named = &named;
        let webhook = &webhook;
        let plan = &plan;
        async move {
            while !named(name, cluster) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} in {cluster} never reached the webhook: {:?}; log:\n{}",
                    webhook.received(),
                    local_cluster::log_tail(&plan.log_path("alertmanager"), 30)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // The cluster below quorum first. Alertmanager's inhibitor learns of alerts apart
    // from its dispatcher, so an inhibiting alert that arrives together with its target
    // can lose that race and let the target through: with all three in one request,
    // this test failed once in many runs.
    assert_eq!(
        post_json(
            plan.alertmanager,
            "/api/v2/alerts",
            &format!("[{}]", alert("RobustMQClusterBelowQuorum", "local"))
        )
        .await,
        200
    );
    wait_for("RobustMQClusterBelowQuorum", "local").await;
    // Then the same no-leader alert in two clusters; only the one below quorum is
    // inhibited.
    let body = format!(
        "[{}, {}]",
        alert("PlacementCenterNoLeader", "local"),
        alert("PlacementCenterNoLeader", "other")
    );
    assert_eq!(
        post_json(plan.alertmanager, "/api/v2/alerts", &body).await,
        200
    );
    wait_for("PlacementCenterNoLeader", "other").await;
    // Alertmanager marks the inhibited alert as such once its group was flushed, which
    // is when it would have been sent.
    let query = "/api/v2/alerts?filter=alertname%3D%22PlacementCenterNoLeader%22\
                 &filter=cluster%3D%22local%22";
    loop {
        let (status, body) = http(plan.alertmanager, "GET", query, "").await;
        assert_eq!(status, 200, "{body}");
        let alerts: Value = serde_json::from_str(&body).expect("alerts as JSON");
        let inhibited = alerts.as_array().is_some_and(|alerts| {
            alerts.len() == 1
                && alerts[0]["status"]["state"] == "suppressed"
                && alerts[0]["status"]["inhibitedBy"]
                    .as_array()
                    .is_some_and(|by| !by.is_empty())
        });
        if inhibited {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "PlacementCenterNoLeader in local is not inhibited: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Below quorum silences the placement-center alerts of the same cluster (the other
    // cluster's, sent in the same request, went out).
    assert!(
        !named("PlacementCenterNoLeader", "local"),
        "an inhibited alert was sent: {:?}",
        webhook.received()
    );
    let sent = webhook.received();
    assert!(sent.iter().all(|a| a.status == "firing"), "{sent:?}");
    assert!(
        sent.iter()
            .any(|a| a.annotations["summary"] == "RobustMQClusterBelowQuorum in local"),
        "{sent:?}"
    );
}

#[test]
fn dashboards_are_what_the_generator_writes() {
    let python = require_program("python3", "python3");
    run_ok(&python, &["deploy/grafana/generate.py", "--check"]);
}
