//! How each process is started: program, flags and identity environment, derived from
//! the plan. Pure functions, so the command lines are unit-tested without spawning.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{ClusterPlan, NodePorts, Service};

/// `CLUSTER_NAME` of every process the launcher starts.
pub const CLUSTER_NAME: &str = "local";

/// One process's command line, environment and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Process name (`placement-center-1`): its `POD_NAME`, log file and data directory.
    pub name: String,
    /// The service binary to run.
    pub program: PathBuf,
    /// Its flags.
    pub args: Vec<String>,
    /// Identity variables, as the Kubernetes Downward API would set them.
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Working directory (the data directory; brokers keep relative files there).
    pub cwd: PathBuf,
}

impl LaunchSpec {
    /// The command line as one shell-like string, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `1=ADDR,2=ADDR,3=ADDR`: the placement center's `--initial-cluster`.
pub fn initial_cluster(nodes: &[NodePorts]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.node_id, n.grpc))
        .collect::<Vec<_>>()
        .join(",")
}

/// `ADDR,ADDR,ADDR`: the gRPC addresses of `nodes`.
pub fn grpc_endpoints(nodes: &[NodePorts]) -> String {
    nodes
        .iter()
        .map(|n| n.grpc.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn flag(args: &mut Vec<String>, name: &str, value: impl ToString) {
    args.push(name.to_owned());
    args.push(value.to_string());
}

fn addr_flags(args: &mut Vec<String>, listen: SocketAddr, metrics: SocketAddr) {
    flag(args, "--listen", listen);
    flag(args, "--metrics-listen", metrics);
}

impl ClusterPlan {
    /// The launch spec of `node` of `service`.
    pub fn launch_spec(&self, service: Service, node: &NodePorts) -> LaunchSpec {
        let name = service.process_name(node.node_id);
        let data_dir = self.data_dir(service, node.node_id);
        let mut args = Vec::new();
        flag(&mut args, "--node-id", node.node_id);
        match service {
            Service::PlacementCenter => {
                addr_flags(&mut args, node.grpc, node.metrics);
                flag(&mut args, "--data-dir", data_dir.display());
                flag(
                    &mut args,
                    "--initial-cluster",
                    initial_cluster(&self.placement),
                );
            }
            Service::JournalServer => {
                // `--config` first: the per-node flags after it override the shared file.
                args.splice(
                    0..0,
                    [
                        "--config".to_owned(),
                        self.journal_config_path().display().to_string(),
                    ],
                );
                addr_flags(&mut args, node.grpc, node.metrics);
                flag(&mut args, "--data-dir", data_dir.display());
                // Registration in the node registry (replication still uses `[[nodes]]`).
                flag(
                    &mut args,
                    "--placement-endpoints",
                    grpc_endpoints(&self.placement),
                );
            }
            Service::MqttBroker => {
                let mqtt = node.mqtt.expect("validated: brokers have an MQTT address");
                if let Some(config) = &self.broker_config {
                    let config = config.display().to_string();
                    args.splice(0..0, ["--config".to_owned(), config]);
                }
                addr_flags(&mut args, mqtt, node.metrics);
                flag(&mut args, "--grpc-listen", node.grpc);
                flag(
                    &mut args,
                    "--placement-endpoints",
                    grpc_endpoints(&self.placement),
                );
                args.extend(self.broker_args.iter().cloned());
            }
        }
        flag(&mut args, "--log-format", "json");
        let mut env = [
            ("POD_NAME", name.clone()),
            ("SERVICE_NAME", service.name().to_owned()),
            ("CLUSTER_NAME", CLUSTER_NAME.to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        env.extend(self.env.iter().cloned());
        LaunchSpec {
            program: self.bin_dir.join(service.name()),
            log: self.log_path(&name),
            cwd: data_dir,
            name,
            args,
            env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service: Service, id: u64) -> String {
        let plan = ClusterPlan::local_default("/r").with_bin_dir("/bin");
        let node = plan.node(service, id).unwrap().clone();
        plan.launch_spec(service, &node).args.join(" ")
    }

    #[test]
    fn placement_center_gets_the_initial_cluster() {
        assert_eq!(
            args(Service::PlacementCenter, 2),
            "--node-id 2 --listen 127.0.0.1:1229 --metrics-listen 127.0.0.1:9082 \
             --data-dir /r/placement-center-2 \
             --initial-cluster 1=127.0.0.1:1228,2=127.0.0.1:1229,3=127.0.0.1:1230 --log-format json"
        );
    }

    #[test]
    fn journal_server_gets_the_shared_config_then_its_own_flags() {
        assert_eq!(
            args(Service::JournalServer, 3),
            "--config /r/journal-cluster.toml --node-id 3 --listen 127.0.0.1:2230 \
             --metrics-listen 127.0.0.1:9183 --data-dir /r/journal-server-3 \
             --placement-endpoints 127.0.0.1:1228,127.0.0.1:1229,127.0.0.1:1230 --log-format json"
        );
    }

    #[test]
    fn a_broker_config_file_goes_first_so_flags_override_it() {
        let mut plan = ClusterPlan::local_default("/r").with_bin_dir("/bin");
        plan.broker_config = Some("/etc/bench.toml".into());
        let spec = plan.launch_spec(Service::MqttBroker, &plan.brokers[0].clone());
        assert_eq!(spec.args[..3], ["--config", "/etc/bench.toml", "--node-id"]);
        let journal = plan.launch_spec(Service::JournalServer, &plan.journal[0].clone());
        assert!(!journal.args.contains(&"/etc/bench.toml".to_owned()));
    }

    #[test]
    fn broker_gets_the_cluster_contract_flags() {
        assert_eq!(
            args(Service::MqttBroker, 1),
            "--node-id 1 --listen 127.0.0.1:1883 --metrics-listen 127.0.0.1:9091 \
             --grpc-listen 127.0.0.1:3228 \
             --placement-endpoints 127.0.0.1:1228,127.0.0.1:1229,127.0.0.1:1230 --log-format json"
        );
    }

    #[test]
    fn identity_env_program_log_and_cwd() {
        let plan = ClusterPlan::local_default("/r").with_bin_dir("/bin");
        let spec = plan.launch_spec(Service::MqttBroker, &plan.brokers[2].clone());
        assert_eq!(spec.name, "mqtt-broker-3");
        assert_eq!(spec.program, PathBuf::from("/bin/mqtt-broker"));
        assert_eq!(spec.log, PathBuf::from("/r/logs/mqtt-broker-3.log"));
        assert_eq!(spec.cwd, PathBuf::from("/r/mqtt-broker-3"));
        let env: Vec<_> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "POD_NAME=mqtt-broker-3",
                "SERVICE_NAME=mqtt-broker",
                "CLUSTER_NAME=local"
            ]
        );
    }
}
