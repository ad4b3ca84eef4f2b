//! Who this process is: the Kubernetes-aware identity every metric, log and trace carries.
//!
//! In Kubernetes the StatefulSet fills these variables through the Downward API; outside
//! it the defaults name a single local instance, so the same binary runs unchanged on a
//! laptop. The lookup is injectable so tests never mutate the process environment (which
//! would race with other tests running in parallel).

/// The identity of one running service instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Logical service name (`mqtt-broker`, `placement-center`, `journal-server`).
    pub service: String,
    /// Pod name (`POD_NAME`, else `HOSTNAME`, else `local`).
    pub pod: String,
    /// Kubernetes namespace (`POD_NAMESPACE`, else `default`).
    pub namespace: String,
    /// Node the pod runs on (`NODE_NAME`, else the host name, else `local`).
    pub node: String,
    /// Cluster name (`CLUSTER_NAME`, else `local`).
    pub cluster: String,
    /// Version of the running build (`APP_VERSION`, else the caller's crate version).
    pub version: String,
}

impl Identity {
    /// Reads the identity from the process environment.
    ///
    /// `service` is the default service name (`SERVICE_NAME` overrides it) and
    /// `default_version` is usually `env!("CARGO_PKG_VERSION")` of the binary.
    pub fn from_env(service: &str, default_version: &str) -> Identity {
        Self::from_lookup(service, default_version, |key| std::env::var(key).ok())
    }

    /// Like [`Identity::from_env`], with the environment lookup supplied by the caller.
    ///
    /// Empty values count as unset: the Downward API yields an empty string when a field
    /// is missing, and an empty label value is the same as no label to Prometheus.
    pub fn from_lookup(
        service: &str,
        default_version: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Identity {
        let get = |key: &str| lookup(key).filter(|value| !value.trim().is_empty());
        let host = get("HOSTNAME").or_else(kernel_hostname);
        Identity {
            service: get("SERVICE_NAME").unwrap_or_else(|| service.to_owned()),
            pod: get("POD_NAME")
                .or_else(|| host.clone())
                .unwrap_or_else(|| "local".to_owned()),
            namespace: get("POD_NAMESPACE").unwrap_or_else(|| "default".to_owned()),
            node: get("NODE_NAME")
                .or(host)
                .unwrap_or_else(|| "local".to_owned()),
            cluster: get("CLUSTER_NAME").unwrap_or_else(|| "local".to_owned()),
            version: get("APP_VERSION").unwrap_or_else(|| default_version.to_owned()),
        }
    }

    /// The OpenTelemetry `service.instance.id`: `<namespace>.<pod>`.
    ///
    /// Unique per (service, instance) in Kubernetes, where pod names are unique within a
    /// namespace. Several local processes of one service must get distinct `POD_NAME`s
    /// (the local launcher sets them) or they share this id.
    pub fn instance_id(&self) -> String {
        format!("{}.{}", self.namespace, self.pod)
    }

    /// The identity as `(label name, value)` pairs, in the order they are exported.
    pub fn labels(&self) -> [(&'static str, &str); 5] {
        [
            ("service", &self.service),
            ("pod", &self.pod),
            ("namespace", &self.namespace),
            ("node", &self.node),
            ("cluster", &self.cluster),
        ]
    }
}

/// A node id as given on the command line or in the environment: a number, or
/// `pod-ordinal`, which takes it from this pod's StatefulSet ordinal (the number after
/// the last `-` of the pod name) plus one, so `placement-center-0` is node 1. One pod
/// template (or one env file) then serves every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeIdSpec {
    /// This id.
    Fixed(u64),
    /// The pod's ordinal plus one.
    PodOrdinal,
}

impl std::str::FromStr for NodeIdSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "pod-ordinal" => Ok(NodeIdSpec::PodOrdinal),
            n => n.parse().map(NodeIdSpec::Fixed).map_err(|_| {
                format!("`{s}` is neither a node id (a positive integer) nor `pod-ordinal`")
            }),
        }
    }
}

impl NodeIdSpec {
    /// The id this spec names for the pod `identity` describes.
    pub fn resolve(self, identity: &Identity) -> Result<u64, String> {
        match self {
            NodeIdSpec::Fixed(id) => Ok(id),
            NodeIdSpec::PodOrdinal => identity
                .pod
                .rsplit_once('-')
                .and_then(|(_, ordinal)| ordinal.parse::<u64>().ok())
                .and_then(|ordinal| ordinal.checked_add(1))
                .ok_or_else(|| {
                    format!(
                        "node id `pod-ordinal`: the pod name `{}` does not end in `-<ordinal>` \
                         (set POD_NAME, or the host name, to a StatefulSet pod's name)",
                        identity.pod
                    )
                }),
        }
    }
}

/// The kernel's host name, for when `HOSTNAME` is not exported (it is a shell variable,
/// and many init systems do not pass it on).
fn kernel_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| vars.get(key).cloned()
    }

    #[test]
    fn reads_downward_api_variables() {
        let id = Identity::from_lookup(
            "mqtt-broker",
            "0.1.0",
            lookup(&[
                ("POD_NAME", "mqtt-broker-1"),
                ("POD_NAMESPACE", "robustmq"),
                ("NODE_NAME", "kind-worker"),
                ("SERVICE_NAME", "broker"),
                ("CLUSTER_NAME", "prod"),
                ("APP_VERSION", "1.2.3"),
                ("HOSTNAME", "ignored"),
            ]),
        );
        assert_eq!(
            id,
            Identity {
                service: "broker".into(),
                pod: "mqtt-broker-1".into(),
                namespace: "robustmq".into(),
                node: "kind-worker".into(),
                cluster: "prod".into(),
                version: "1.2.3".into(),
            }
        );
        assert_eq!(id.instance_id(), "robustmq.mqtt-broker-1");
    }

    #[test]
    fn falls_back_to_hostname_then_defaults() {
        let id = Identity::from_lookup(
            "journal-server",
            "0.9.0",
            lookup(&[("HOSTNAME", "laptop"), ("POD_NAME", " ")]),
        );
        assert_eq!(id.service, "journal-server");
        assert_eq!(id.pod, "laptop");
        assert_eq!(id.node, "laptop");
        assert_eq!(id.namespace, "default");
        assert_eq!(id.cluster, "local");
        assert_eq!(id.version, "0.9.0");
    }

    #[test]
    fn labels_are_in_export_order() {
        let id = Identity::from_lookup("s", "v", lookup(&[("HOSTNAME", "h")]));
        let names: Vec<_> = id.labels().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["service", "pod", "namespace", "node", "cluster"]);
    }

    #[test]
    fn node_id_from_the_pod_ordinal() {
        let pod = |name: &str| Identity::from_lookup("svc", "0", lookup(&[("POD_NAME", name)]));
        let spec: NodeIdSpec = "pod-ordinal".parse().unwrap();
        assert_eq!(spec.resolve(&pod("placement-center-0")), Ok(1));
        assert_eq!(spec.resolve(&pod("mqtt-broker-12")), Ok(13));
        let err = spec.resolve(&pod("broker")).unwrap_err();
        assert!(err.contains("`broker`"), "{err}");
        assert!(spec.resolve(&pod("broker-x")).is_err());
        let fixed: NodeIdSpec = " 7".parse().unwrap();
        assert_eq!(fixed.resolve(&pod("broker")), Ok(7));
        assert!("seven"
            .parse::<NodeIdSpec>()
            .unwrap_err()
            .contains("pod-ordinal"));
        assert!("-1".parse::<NodeIdSpec>().is_err());
    }
}
