//! `--prometheus`: a Prometheus server scraping all nine metrics endpoints, when the
//! `prometheus` binary is installed. Its config is rendered from the plan;
//! `deploy/prometheus/local-cluster.yml` is that rendering for the default ports (a test
//! keeps the two equal), for running Prometheus by hand.

use std::time::{Duration, Instant};

use crate::binaries::find_on_path;
use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::spec::LaunchSpec;
use crate::{ClusterPlan, Service};

/// How often every target is scraped.
pub const SCRAPE_INTERVAL: &str = "5s";
/// How long Prometheus may take to answer 200 on `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Prometheus configuration for `plan`: one job per service, one static target per
/// process with `service` and `pod` labels.
pub fn render_config(plan: &ClusterPlan) -> String {
    let mut out = String::from(
        "# Prometheus scraping the local three-node cluster (local-cluster, --prometheus).\n\
         # Rendered from the port table in local-cluster/src/plan.rs; a unit test keeps this\n\
         # file equal to it. By hand: prometheus --config.file=deploy/prometheus/local-cluster.yml\n\
         global:\n",
    );
    out += &format!(
        "  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n\n"
    );
    out += "scrape_configs:\n";
    for service in Service::ALL {
        if plan.nodes(service).is_empty() {
            continue;
        }
        out += &format!("  - job_name: {service}\n");
        out += "    # The services export the same service/pod labels themselves (identity\n";
        out += "    # labels); keep theirs instead of renaming them to exported_*.\n";
        out += "    honor_labels: true\n    static_configs:\n";
        for node in plan.nodes(service) {
            out += &format!(
                "      - targets: [\"{}\"]\n        labels: {{service: {service}, pod: {}}}\n",
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
pub async fn start(plan: &ClusterPlan) -> Result<Option<ChildProcess>> {
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
    std::fs::write(&config, render_config(plan))
        .map_err(Error::io(format!("writing {}", config.display())))?;
    let spec = LaunchSpec {
        name: "prometheus".to_owned(),
        program,
        args: vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={}", plan.prometheus),
        ],
        env: Vec::new(),
        log: plan.log_path("prometheus"),
        cwd: dir,
    };
    let mut child = ChildProcess::spawn(&spec)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(answer) = crate::probe::http_get(plan.prometheus, "/-/ready").await {
            if answer.status == 200 {
                break;
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
                "prometheus not ready after {READY_TIMEOUT:?}; see {}",
                spec.log.display()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Some(child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_file_is_the_rendering_of_the_default_plan() {
        let expected = render_config(&ClusterPlan::local_default("data/local-cluster"));
        let committed = include_str!("../../deploy/prometheus/local-cluster.yml");
        assert_eq!(
            committed, expected,
            "deploy/prometheus/local-cluster.yml is stale; rewrite it with render_config's output"
        );
    }

    #[test]
    fn scrapes_every_metrics_endpoint_with_pod_labels() {
        let plan = ClusterPlan::local_default("r");
        let text = render_config(&plan);
        for port in [9081, 9082, 9083, 9181, 9182, 9183, 9091, 9092, 9093] {
            assert!(text.contains(&format!("\"127.0.0.1:{port}\"")), "{port}");
        }
        assert!(
            text.contains("labels: {service: mqtt-broker, pod: mqtt-broker-3}"),
            "{text}"
        );
        assert!(text.contains("scrape_interval: 5s"), "{text}");
        assert_eq!(text.matches("job_name").count(), 3);
    }
}
