//! `--prometheus`: a Prometheus server scraping all nine metrics endpoints and
//! evaluating the shipped recording and alerting rules, when the `prometheus` binary is
//! installed. Its config is rendered from the plan; `deploy/prometheus/local-cluster.yml`
//! is that rendering for the default ports (a test keeps the two equal), for running
//! Prometheus by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::binaries::find_on_path;
use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::spec::LaunchSpec;
use crate::{ClusterPlan, Service, CLUSTER_NAME};

/// How often every target is scraped and the rules evaluated, by default.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(5);
/// The rules (deploy/prometheus/rules/robustmq.rules.yml), carried in the binary.
pub const RULES: &str = include_str!("../../deploy/prometheus/rules/robustmq.rules.yml");
/// Where the config expects the rules, relative to the config file.
pub const RULES_PATH: &str = "rules/robustmq.rules.yml";

/// The namespace every local process reports (the identity's default outside Kubernetes).
pub const LOCAL_NAMESPACE: &str = "default";

/// How the Prometheus of a plan is set up.
#[derive(Debug, Clone, Copy)]
pub struct PrometheusSetup {
    /// Scrape and rule evaluation interval.
    pub interval: Duration,
    /// Send alerts to the plan's Alertmanager.
    pub alertmanager: bool,
}

impl Default for PrometheusSetup {
    fn default() -> Self {
        PrometheusSetup {
            interval: SCRAPE_INTERVAL,
            alertmanager: false,
        }
    }
}

/// A Prometheus duration: `5s`, `500ms`.
fn prometheus_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
/// How long Prometheus may take to answer 200 on `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Prometheus configuration for `plan`: the shipped rules ([`RULES_PATH`]), the
/// plan's Alertmanager if `setup` asks for it, one job per service, one static target
/// per process with `service` and `pod` labels.
pub fn render_config(plan: &ClusterPlan, setup: PrometheusSetup) -> String {
    let mut out = String::from(
        "# Prometheus scraping the local three-node cluster (local-cluster --prometheus\n\
         # --alertmanager). Rendered from the port table in local-cluster/src/plan.rs; a unit\n\
         # test keeps this file equal to it. By hand:\n\
         #   prometheus --config.file=deploy/prometheus/local-cluster.yml\n\
         global:\n",
    );
    let interval = prometheus_duration(setup.interval);
    out += &format!("  scrape_interval: {interval}\n  evaluation_interval: {interval}\n\n");
    out += "# Recording and alerting rules (relative to this file).\n";
    out += &format!("rule_files:\n  - {RULES_PATH}\n\n");
    if setup.alertmanager {
        out += "alerting:\n  alertmanagers:\n    - static_configs:\n";
        out += &format!("        - targets: [\"{}\"]\n\n", plan.alertmanager);
    }
    out += "scrape_configs:\n";
    for service in Service::ALL {
        if plan.nodes(service).is_empty() {
            continue;
        }
        out += &format!("  - job_name: {service}\n");
        out += "    # The services export the same labels themselves (identity labels); keep\n";
        out += "    # theirs instead of renaming them to exported_*. The target labels give\n";
        out += "    # `up` the same identity, so alerts on it group like the others.\n";
        out += "    honor_labels: true\n    static_configs:\n";
        for node in plan.nodes(service) {
            out += &format!(
                "      - targets: [\"{}\"]\n        labels: {{service: {service}, pod: {}, \
                 cluster: {CLUSTER_NAME}, namespace: {LOCAL_NAMESPACE}}}\n",
                node.metrics,
                service.process_name(node.node_id)
            );
        }
    }
    out
}

/// Starts Prometheus on `plan.prometheus` with data under `<root>/prometheus`, if it is
/// installed (`Ok(None)` if not), and waits for it to be ready. A Prometheus that does
/// not get ready is left running; the warning says where its log is. A taken port is an
/// error (another Prometheus there would look ready).
pub async fn start(plan: &ClusterPlan, setup: PrometheusSetup) -> Result<Option<ChildProcess>> {
    let Some(program) = find_on_path("prometheus") else {
        return Ok(None);
    };
    if std::net::TcpListener::bind(plan.prometheus).is_err() {
        return Err(Error::PortInUse {
            name: "prometheus".to_owned(),
            addr: plan.prometheus,
        });
    }
    let dir = plan.root.join("prometheus");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, render_config(plan, setup))
        .map_err(Error::io(format!("writing {}", config.display())))?;
    let rules = dir.join(RULES_PATH);
    if let Some(parent) = rules.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    std::fs::write(&rules, RULES).map_err(Error::io(format!("writing {}", rules.display())))?;
    let spec = LaunchSpec {
        name: "prometheus".to_owned(),
        program,
        args: vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={}", plan.prometheus),
            // Keep the trace-id exemplars of the latency histograms (Grafana links
            // them to the trace viewer).
            "--enable-feature=exemplar-storage".to_owned(),
        ],
        env: Vec::new(),
        log: plan.log_path("prometheus"),
        cwd: dir,
    };
    spawn_until_ready(spec, plan.prometheus).await.map(Some)
}

/// Spawns `spec` and waits until it answers 200 on `addr`'s `/-/ready` (Prometheus and
/// Alertmanager both have it). A process that does not get ready in time is left
/// running with a warning naming its log; one that exits is an error with its log tail.
pub(crate) async fn spawn_until_ready(spec: LaunchSpec, addr: SocketAddr) -> Result<ChildProcess> {
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let mut child = ChildProcess::spawn(&spec)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(answer) = crate::probe::http_get(addr, "/-/ready").await {
            if answer.status == 200 {
                return Ok(child);
            }
        }
        if let Some(status) = child.try_exit()? {
            return Err(Error::ExitedEarly {
                name: spec.name,
                status,
                tail: child.log_tail(crate::LOG_TAIL_LINES),
                log: spec.log,
            });
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{} not ready after {READY_TIMEOUT:?}; see {}",
                spec.name,
                spec.log.display()
            );
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_file_is_the_rendering_of_the_default_plan() {
        let setup = PrometheusSetup {
            alertmanager: true,
            ..PrometheusSetup::default()
        };
        let expected = render_config(&ClusterPlan::local_default("data/local-cluster"), setup);
        let committed = include_str!("../../deploy/prometheus/local-cluster.yml");
        assert_eq!(
            committed, expected,
            "deploy/prometheus/local-cluster.yml is stale; rewrite it with render_config's output"
        );
    }

    #[test]
    fn scrapes_every_metrics_endpoint_with_pod_labels() {
        let plan = ClusterPlan::local_default("r");
        let text = render_config(&plan, PrometheusSetup::default());
        for port in [9081, 9082, 9083, 9181, 9182, 9183, 9091, 9092, 9093] {
            assert!(text.contains(&format!("\"127.0.0.1:{port}\"")), "{port}");
        }
        assert!(
            text.contains(
                "labels: {service: mqtt-broker, pod: mqtt-broker-3, cluster: local, namespace: default}"
            ),
            "{text}"
        );
        assert!(text.contains("scrape_interval: 5s"), "{text}");
        assert_eq!(text.matches("job_name").count(), 3);
        assert!(
            text.contains("rule_files:\n  - rules/robustmq.rules.yml"),
            "{text}"
        );
        assert!(!text.contains("alertmanagers"), "{text}");
    }

    #[test]
    fn alerts_go_to_the_plans_alertmanager_and_intervals_may_be_short() {
        let plan = ClusterPlan::local_with_offset("r", 10).unwrap();
        let setup = PrometheusSetup {
            interval: Duration::from_millis(500),
            alertmanager: true,
        };
        let text = render_config(&plan, setup);
        assert!(text.contains("- targets: [\"127.0.0.1:9104\"]"), "{text}");
        assert!(text.contains("evaluation_interval: 500ms"), "{text}");
    }
}
