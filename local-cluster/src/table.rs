//! The endpoint table printed once the cluster is ready: every process's MQTT, gRPC and
//! metrics address and its log file.

use crate::{ClusterPlan, Service};

/// One row per process, aligned columns; `prometheus` is an extra line when it runs.
pub fn render_endpoints(plan: &ClusterPlan, prometheus: Option<&str>) -> String {
    let mut rows = vec![[
        "process".to_owned(),
        "MQTT".to_owned(),
        "gRPC".to_owned(),
        "metrics / health".to_owned(),
        "log".to_owned(),
    ]];
    for service in Service::ALL {
        for node in plan.nodes(service) {
            let name = service.process_name(node.node_id);
            rows.push([
                name.clone(),
                node.mqtt
                    .map_or_else(|| "-".to_owned(), |a| format!("mqtt://{a}")),
                node.grpc.to_string(),
                format!("http://{}/metrics", node.metrics),
                format!("logs/{name}.log"),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    if let Some(url) = prometheus {
        out += &format!("{:<w$}  {url}\n", "prometheus", w = widths[0]);
    }
    out += &format!("data and logs under {}\n", plan.root.display());
    out
}

/// `placement-center leader: placement-center-2 (127.0.0.1:1229)`, or that none is known.
pub fn render_leader(plan: &ClusterPlan, leader: Option<u64>) -> String {
    match leader.and_then(|id| plan.node(Service::PlacementCenter, id)) {
        Some(node) => format!(
            "placement-center leader: {} ({})",
            Service::PlacementCenter.process_name(node.node_id),
            node.grpc
        ),
        None => "placement-center leader: none known yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_endpoint_aligned() {
        let plan = ClusterPlan::local_default("/r");
        let text = render_endpoints(&plan, Some("http://127.0.0.1:9090"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 9 + 2, "{text}");
        assert!(lines[0].starts_with("process"), "{text}");
        let broker = lines
            .iter()
            .find(|l| l.starts_with("mqtt-broker-2"))
            .unwrap();
        for part in [
            "mqtt://127.0.0.1:1884",
            "127.0.0.1:3229",
            "http://127.0.0.1:9092/metrics",
            "logs/mqtt-broker-2.log",
        ] {
            assert!(broker.contains(part), "{broker}");
        }
        // Columns line up: the gRPC column starts at the same offset in every row.
        let col = lines[1].find("127.0.0.1:1228").unwrap();
        assert_eq!(broker.find("127.0.0.1:3229"), Some(col), "{text}");
        assert!(
            text.contains("prometheus") && text.contains("/r\n"),
            "{text}"
        );
    }

    #[test]
    fn leader_line() {
        let plan = ClusterPlan::local_default("/r");
        assert_eq!(
            render_leader(&plan, Some(3)),
            "placement-center leader: placement-center-3 (127.0.0.1:1230)"
        );
        assert!(render_leader(&plan, None).contains("none"));
    }
}
