//! [`LocalCluster`]: the running processes of a [`ClusterPlan`]. Started tier by tier
//! (placement → journal → brokers, each tier ready before the next), stopped in reverse
//! order, killed when dropped. End-to-end tests use it directly; the binary wraps it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use placement_client::{ClientConfig, PlacementClient};

use crate::binaries::check_binaries;
use crate::error::{Error, Result};
use crate::process::{ChildProcess, StopOutcome};
use crate::root::prepare;
use crate::spec::LaunchSpec;
use crate::{ClusterPlan, NodePorts, Service};

mod health;
pub use health::Exited;

/// Lines of log shown when a process fails.
pub const LOG_TAIL_LINES: usize = 20;

/// One planned process and, while it runs, its child.
struct Managed {
    /// Which service it is (tiers start and stop by service).
    service: Service,
    /// Its addresses (the metrics port is probed).
    node: NodePorts,
    /// How to (re)start it.
    spec: LaunchSpec,
    /// `None` before the start, after a stop or kill, and once an exit was reported.
    child: Option<ChildProcess>,
}

/// A running local cluster. Dropping it SIGKILLs every process; [`LocalCluster::stop`]
/// stops them gracefully.
pub struct LocalCluster {
    /// The plan, with absolute paths.
    plan: ClusterPlan,
    /// Every planned process, in start order.
    procs: Vec<Managed>,
    /// Client of the placement center members, for the leader and status.
    client: PlacementClient,
}

impl LocalCluster {
    /// Creates the directories and generated config under `plan.root`, starts every
    /// process of the plan and waits until each answers 200 on `/readyz`. Each tier gets
    /// `plan.ready_timeout`; a process that exits or stays unready fails the start with
    /// its name and the end of its log (the processes already started are killed).
    ///
    /// Layout of the root: `logs/<name>.log`, `<name>/` (data and working directory of
    /// each process), `journal-cluster.toml`, and the `.local-cluster` marker.
    pub async fn start(plan: ClusterPlan) -> Result<LocalCluster> {
        plan.validate()?;
        let services: Vec<Service> = Service::ALL
            .into_iter()
            .filter(|&s| !plan.nodes(s).is_empty())
            .collect();
        check_binaries(&plan.bin_dir, &services)?;
        for service in &services {
            for node in plan.nodes(*service) {
                node.check_free(&service.process_name(node.node_id))?;
            }
        }
        let plan = prepare(plan)?;
        let procs = services
            .iter()
            .flat_map(|&service| {
                plan.nodes(service)
                    .iter()
                    .map(move |n| (service, n.clone()))
            })
            .map(|(service, node)| Managed {
                spec: plan.launch_spec(service, &node),
                service,
                node,
                child: None,
            })
            .collect();
        let endpoints = plan.placement.iter().map(|n| n.grpc.to_string());
        let client = PlacementClient::new(
            ClientConfig::new(endpoints).with_timeout(Duration::from_secs(2)),
        )?;
        let mut cluster = LocalCluster {
            plan,
            procs,
            client,
        };
        for service in services {
            let tier = cluster.indices(service);
            for &i in &tier {
                cluster.spawn(i)?;
            }
            cluster.wait_ready(&tier).await?;
        }
        Ok(cluster)
    }

    /// The plan, with `root` and `bin_dir` made absolute.
    pub fn plan(&self) -> &ClusterPlan {
        &self.plan
    }

    /// A client of the placement-center members (2 s per call).
    pub fn placement_client(&self) -> &PlacementClient {
        &self.client
    }

    /// The gRPC addresses of the placement-center members.
    pub fn placement_endpoints(&self) -> Vec<SocketAddr> {
        self.plan.placement.iter().map(|n| n.grpc).collect()
    }

    /// The gRPC addresses of the journal nodes.
    pub fn journal_endpoints(&self) -> Vec<SocketAddr> {
        self.plan.journal.iter().map(|n| n.grpc).collect()
    }

    /// The MQTT addresses of the brokers.
    pub fn mqtt_addrs(&self) -> Vec<SocketAddr> {
        self.plan.brokers.iter().filter_map(|n| n.mqtt).collect()
    }

    /// The addresses of node `node` of `service`.
    pub fn node(&self, service: Service, node: u64) -> Result<&NodePorts> {
        self.plan
            .node(service, node)
            .ok_or(Error::UnknownProcess { service, node })
    }

    /// The pid of a running process (`None` once stopped, killed or exited).
    pub fn pid(&self, service: Service, node: u64) -> Option<u32> {
        let i = self.index(service, node).ok()?;
        self.procs[i].child.as_ref()?.pid()
    }

    /// The pids of every running process, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .filter_map(|m| Some((m.spec.name.clone(), m.child.as_ref()?.pid()?)))
            .collect()
    }

    /// SIGKILLs one process (for failover tests) and waits for it to die.
    pub async fn kill(&mut self, service: Service, node: u64) -> Result<()> {
        let i = self.index(service, node)?;
        if let Some(mut child) = self.procs[i].child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Stops one process gracefully if it runs, starts it again with the same flags and
    /// data directory, and waits until it is ready.
    pub async fn restart(&mut self, service: Service, node: u64) -> Result<()> {
        let i = self.index(service, node)?;
        if let Some(mut child) = self.procs[i].child.take() {
            child.terminate(self.plan.stop_timeout).await?;
        }
        self.procs[i].node.check_free(&self.procs[i].spec.name)?;
        self.spawn(i)?;
        self.wait_ready(&[i]).await
    }

    /// [`LocalCluster::restart`] with `env` added to the process's environment from now
    /// on (a later value of a variable wins), e.g. to switch a setting on one node.
    pub async fn restart_with_env(
        &mut self,
        service: Service,
        node: u64,
        env: &[(&str, &str)],
    ) -> Result<()> {
        let i = self.index(service, node)?;
        let spec = &mut self.procs[i].spec;
        spec.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self.restart(service, node).await
    }

    /// Stops everything gracefully: brokers, then journal nodes, then the placement
    /// center; within a tier all get SIGTERM at once, and SIGKILL after
    /// `plan.stop_timeout`. Returns how each running process ended.
    pub async fn stop(mut self) -> Result<Vec<StopOutcome>> {
        let mut outcomes = Vec::new();
        for service in Service::ALL.into_iter().rev() {
            let mut tier: Vec<ChildProcess> = self
                .indices(service)
                .into_iter()
                .filter_map(|i| self.procs[i].child.take())
                .collect();
            for child in &tier {
                child.send_term().await?;
            }
            let deadline = Instant::now() + self.plan.stop_timeout;
            for child in &mut tier {
                outcomes.push(child.wait_or_kill(deadline).await?);
            }
        }
        Ok(outcomes)
    }

    fn index(&self, service: Service, node: u64) -> Result<usize> {
        self.procs
            .iter()
            .position(|m| m.service == service && m.node.node_id == node)
            .ok_or(Error::UnknownProcess { service, node })
    }

    fn indices(&self, service: Service) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.procs[i].service == service)
            .collect()
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let m = &mut self.procs[i];
        m.child = Some(ChildProcess::spawn(&m.spec)?);
        Ok(())
    }
}
