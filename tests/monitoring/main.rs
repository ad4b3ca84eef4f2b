//! The monitoring the repository ships (deploy/: Prometheus rules and their unit tests,
//! the PrometheusRule, Alertmanager routing, Grafana dashboards, the runbook) is valid,
//! complete, and true of the running cluster.

mod artifacts;
mod expressions;
mod live;
mod reference;
