//! A real Prometheus for tests: started by `local-cluster`'s own code with the shipped
//! rules, scraping a test cluster, and asked through its HTTP API.

use std::net::SocketAddr;
use std::time::Duration;

use local_cluster::prometheus::PrometheusSetup;
use local_cluster::{ChildProcess, ClusterPlan};
use serde_json::Value;

/// A running Prometheus (killed on drop).
pub struct Prometheus {
    pub addr: SocketAddr,
    /// Its log, for failure messages.
    pub log: std::path::PathBuf,
    _child: ChildProcess,
}

/// The program a test needs from Debian's packages, or a panic saying how to get it.
pub fn require_program(name: &str, package: &str) -> std::path::PathBuf {
    local_cluster::binaries::find_on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: apt-get install {package} (scripts/install-deps.sh does)"
        )
    })
}

impl Prometheus {
    /// Starts Prometheus for `plan` (its `prometheus` address and root), scraping and
    /// evaluating rules every `interval`.
    pub async fn start(plan: &ClusterPlan, interval: Duration) -> Prometheus {
        require_program("prometheus", "prometheus");
        let setup = PrometheusSetup {
            interval,
            alertmanager: false,
        };
        let child = local_cluster::prometheus::start(plan, setup)
            .await
            .expect("prometheus starts")
            .expect("prometheus is installed");
        Prometheus {
            addr: plan.prometheus,
            log: plan.log_path("prometheus"),
            _child: child,
        }
    }

    /// GET `path` on the API; the `data` of a `success` answer.
    pub async fn api(&self, path: &str) -> Result<Value, String> {
        api(self.addr, path).await
    }

    /// Evaluates `expr` now: its result vector (an error for a bad expression).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        query(self.addr, expr).await
    }

    /// Every rule group (`/api/v1/rules`).
    pub async fn rule_groups(&self) -> Vec<Value> {
        let data = self.api("/api/v1/rules").await.expect("rules answer");
        data["groups"].as_array().cloned().unwrap_or_default()
    }

    /// Every active (pending or firing) alert.
    pub async fn alerts(&self) -> Vec<Value> {
        let data = self.api("/api/v1/alerts").await.expect("alerts answer");
        data["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        local_cluster::log_tail(&self.log, 30)
    }
}

/// GET `path` on the API of the Prometheus at `addr`; the `data` of a `success` answer.
pub async fn api(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let answer = local_cluster::probe::http_get(addr, path).await?;
    let body: Value = serde_json::from_str(&answer.body)
        .map_err(|e| format!("GET {path}: {e}: {}", answer.body))?;
    if body["status"] != "success" {
        return Err(format!("GET {path}: {body}"));
    }
    Ok(body["data"].clone())
}

/// Evaluates `expr` now at the Prometheus at `addr`: its result vector (an error for a
/// bad expression).
pub async fn query(addr: SocketAddr, expr: &str) -> Result<Vec<Value>, String> {
    let data = api(
        addr,
        &format!("/api/v1/query?query={}", percent_encode(expr)),
    )
    .await?;
    match &data["result"] {
        Value::Array(series) => Ok(series.clone()),
        // A scalar or string result is one value.
        other => Ok(vec![other.clone()]),
    }
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters pass).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_promql() {
        assert_eq!(
            super::percent_encode("sum by (le) (x{a=~\"b|c\"}[5m])"),
            "sum%20by%20%28le%29%20%28x%7Ba%3D~%22b%7Cc%22%7D%5B5m%5D%29"
        );
    }
}
