//! The root metrics registry of a service: identity labels, build info, process and
//! runtime collectors.
//!
//! The root registry has **no** name prefix, because Prometheus' standard `process_*`
//! metrics must keep their standard names and prometheus-client applies a registry's
//! prefix to everything under it (collectors and sub-registries included). Services
//! register their own metrics under [`namespaced`], which yields `robustmq_*` names:
//!
//! ```
//! # use common_metrics::{new_registry, namespaced, Identity};
//! # use prometheus_client::metrics::gauge::Gauge;
//! let identity = Identity::from_lookup("mqtt-broker", "0.1.0", |_| None);
//! let mut registry = new_registry(&identity, true);
//! let connections = Gauge::<i64>::default();
//! namespaced(&mut registry).register(
//!     "connections_active",
//!     "Client connections currently open",
//!     connections.clone(),
//! );
//! // exported as robustmq_connections_active{service="mqtt-broker",pod=…} 0
//! ```

use std::borrow::Cow;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::identity::Identity;
use crate::process::ProcessCollector;
use crate::runtime::RuntimeCollector;

/// The metric namespace every service metric lives in.
pub const NAMESPACE: &str = "robustmq";

/// Label set of `robustmq_build_info`: built once, so a `Vec` of pairs is fine.
type InfoLabels = Vec<(&'static str, String)>;

/// Builds the root registry of a service.
///
/// With `identity_labels` the identity (`service`, `pod`, `namespace`, `node`, `cluster`)
/// becomes a constant label set on every sample this registry exports; switch it off when
/// Prometheus target relabelling already attaches them (a ServiceMonitor usually adds
/// `pod` and `namespace`), to avoid `exported_*` label clashes.
///
/// Either way the registry carries `robustmq_build_info{service,version,cluster,pod,
/// namespace,node} 1`, Prometheus' `process_*` metrics and `robustmq_tokio_*` metrics of
/// the current Tokio runtime (or, when called outside one, of the runtime that serves the
/// scrape).
pub fn new_registry(identity: &Identity, identity_labels: bool) -> Registry {
    let mut registry = if identity_labels {
        Registry::with_labels(
            identity
                .labels()
                .into_iter()
                .map(|(name, value)| (Cow::Borrowed(name), Cow::Owned(value.to_owned()))),
        )
    } else {
        Registry::default()
    };

    registry.register(
        "robustmq_build_info",
        "Build and identity of this service instance; always 1",
        build_info(identity, identity_labels),
    );
    registry.register_collector(Box::new(ProcessCollector::new()));
    registry.register_collector(Box::new(RuntimeCollector::current()));
    registry
}

/// The `robustmq_` sub-registry of `root`, where service metrics belong.
///
/// Each call adds a new (empty) sub-registry, so hand the result down to one module's
/// `*Metrics::register` and let it take its own `sub_registry_with_prefix` below it.
pub fn namespaced(root: &mut Registry) -> &mut Registry {
    root.sub_registry_with_prefix(NAMESPACE)
}

/// `robustmq_build_info` as a one-series family. When identity labels are registry-wide
/// they are left out here, or the sample would carry each of them twice.
fn build_info(identity: &Identity, identity_labels: bool) -> Family<InfoLabels, Gauge> {
    let labels: InfoLabels = if identity_labels {
        vec![("version", identity.version.clone())]
    } else {
        vec![
            ("service", identity.service.clone()),
            ("version", identity.version.clone()),
            ("cluster", identity.cluster.clone()),
            ("pod", identity.pod.clone()),
            ("namespace", identity.namespace.clone()),
            ("node", identity.node.clone()),
        ]
    };
    let family = Family::<InfoLabels, Gauge>::default();
    family.get_or_create(&labels).set(1);
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{find, parse_metrics};
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;

    fn identity() -> Identity {
        Identity {
            service: "mqtt-broker".into(),
            pod: "mqtt-broker-0".into(),
            namespace: "robustmq".into(),
            node: "node-a".into(),
            cluster: "test".into(),
            version: "1.0.0".into(),
        }
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn identity_labels_on_every_sample() {
        let mut registry = new_registry(&identity(), true);
        let counter = Counter::<u64>::default();
        namespaced(&mut registry).register("packets_received", "Packets", counter.clone());
        counter.inc();
        let text = encoded(&registry);
        let samples = parse_metrics(&text);
        let who = [
            ("service", "mqtt-broker"),
            ("pod", "mqtt-broker-0"),
            ("namespace", "robustmq"),
            ("node", "node-a"),
            ("cluster", "test"),
        ];
        assert_eq!(
            find(&samples, "robustmq_packets_received_total", &who),
            Some(1.0)
        );
        let mut info = who.to_vec();
        info.push(("version", "1.0.0"));
        assert_eq!(find(&samples, "robustmq_build_info", &info), Some(1.0));
        assert!(
            find(&samples, "process_cpu_seconds_total", &who).is_some(),
            "{text}"
        );
        assert!(!text.contains("robustmq_process_"), "{text}");
        // Every sample line carries the identity, none twice.
        for sample in &samples {
            assert_eq!(
                sample.labels.get("pod").map(String::as_str),
                Some("mqtt-broker-0")
            );
        }
        assert!(!text.contains("pod=\"mqtt-broker-0\",pod="));
    }

    #[test]
    fn identity_labels_switched_off() {
        let registry = new_registry(&identity(), false);
        let text = encoded(&registry);
        let samples = parse_metrics(&text);
        let info = [
            ("service", "mqtt-broker"),
            ("version", "1.0.0"),
            ("cluster", "test"),
            ("pod", "mqtt-broker-0"),
            ("namespace", "robustmq"),
            ("node", "node-a"),
        ];
        assert_eq!(find(&samples, "robustmq_build_info", &info), Some(1.0));
        let cpu = samples
            .iter()
            .find(|s| s.name == "process_cpu_seconds_total")
            .expect("process metrics present");
        assert!(cpu.labels.is_empty(), "{text}");
    }
}
