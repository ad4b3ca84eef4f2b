//! The `local-cluster` command: build the binaries, start the cluster, print its
//! endpoints, show a live status line, and stop everything in order on Ctrl-C/SIGTERM
//! (a second Ctrl-C kills at once).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::binaries::{cargo_build, default_bin_dir};
use crate::cluster::LocalCluster;
use crate::error::{Error, Result};
use crate::process::StopOutcome;
use crate::prometheus::PrometheusSetup;
use crate::status::{render, RateMeter};
use crate::table::{render_endpoints, render_leader};
use crate::traces::{render_tree, TraceCollector, LOCAL_OTLP_PORT};
use crate::{alertmanager, prometheus, root};
use crate::{ClusterPlan, Service};

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Root of data directories and logs.
    pub data_dir: PathBuf,
    /// Wipe `data_dir` before starting.
    pub fresh: bool,
    /// Where the service binaries are; default: beside this executable.
    pub bin_dir: Option<PathBuf>,
    /// Run `$CARGO build` first when started by cargo.
    pub build: bool,
    /// Also run Prometheus, if installed.
    pub prometheus: bool,
    /// Also run Alertmanager (and Prometheus), if installed, and print its notifications.
    pub alertmanager: bool,
    /// Added to every port of the table.
    pub port_offset: u16,
    /// How long each tier may take to get ready.
    pub ready_timeout: Duration,
    /// How often the status line is refreshed.
    pub status_interval: Duration,
    /// A config file for every broker (flags still set addresses and the cluster).
    pub broker_config: Option<PathBuf>,
    /// Collect every process's spans here and print each message trace as a tree
    /// (unless `OTEL_EXPORTER_OTLP_ENDPOINT` points them elsewhere).
    pub traces: bool,
    /// With `traces`: the fraction of messages without a `traceparent` to trace.
    pub trace_sample_ratio: f64,
}

/// Ctrl-C and SIGTERM, listened to from the start so that neither kills the launcher
/// with its children still running.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        let install = |kind| signal(kind).map_err(Error::io("installing a signal handler"));
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Runs the command until a stop signal; how each process ended (empty if interrupted
/// before the cluster was up).
pub async fn run(options: LaunchOptions) -> Result<Vec<StopOutcome>> {
    let mut signals = StopSignals::install()?;
    let bin_dir = options.bin_dir.clone().unwrap_or_else(default_bin_dir);
    match std::env::var_os("CARGO") {
        Some(cargo) if options.build => {
            println!("building placement-center, journal-server and mqtt-broker …");
            tokio::select! {
                built = cargo_build(cargo.as_ref(), &bin_dir, &Service::ALL) => built?,
                _ = signals.recv() => return Ok(Vec::new()),
            }
        }
        _ => {}
    }
    if options.fresh {
        root::wipe(&options.data_dir)?;
    }
    let mut plan = ClusterPlan::local_with_offset(&options.data_dir, options.port_offset)?
        .with_bin_dir(bin_dir);
    plan.ready_timeout = options.ready_timeout;
    plan.broker_config = options.broker_config.clone();
    let collector = if options.traces {
        start_trace_collection(&mut plan, options.port_offset, options.trace_sample_ratio).await?
    } else {
        None
    };
    println!(
        "starting 3 × placement-center, 3 × journal-server, 3 × mqtt-broker under {} …",
        plan.root.display()
    );
    let mut cluster = tokio::select! {
        started = LocalCluster::start(plan) => started?,
        _ = signals.recv() => {
            eprintln!("interrupted during start-up: the processes started so far were killed");
            return Ok(Vec::new());
        }
    };
    let (alerting, mut monitors) = start_monitoring(cluster.plan(), &options).await;
    let url = monitors
        .prometheus
        .as_ref()
        .map(|_| format!("http://{}", cluster.plan().prometheus));
    println!("\n{}", render_endpoints(cluster.plan(), url.as_deref()));
    if monitors.alertmanager.is_some() {
        println!(
            "Alertmanager  http://{}  (its notifications are printed here as `alert …` lines)",
            cluster.plan().alertmanager
        );
    }
    let leader = cluster
        .placement_client()
        .status()
        .await
        .ok()
        .map(|s| s.leader_id);
    println!(
        "{}",
        render_leader(cluster.plan(), leader.filter(|&id| id != 0))
    );
    println!("Ctrl-C stops the cluster.\n");

    watch(
        &mut cluster,
        &mut signals,
        options.status_interval,
        collector.as_ref(),
    )
    .await?;

    println!("stopping brokers → journal → placement (SIGTERM, SIGKILL after {:?}); Ctrl-C again kills at once", cluster.plan().stop_timeout);
    let grace = cluster.plan().stop_timeout;
    let mut outcomes = Vec::new();
    for monitor in [monitors.prometheus.take(), monitors.alertmanager.take()]
        .into_iter()
        .flatten()
    {
        let mut monitor = monitor;
        outcomes.push(monitor.terminate(grace).await?);
    }
    drop(alerting);
    tokio::select! {
        stopped = cluster.stop() => outcomes.extend(stopped?),
        _ = signals.recv() => eprintln!("second signal: killed every process"),
    }
    Ok(outcomes)
}

/// Prometheus and Alertmanager, as far as they are asked for and installed.
#[derive(Default)]
struct Monitors {
    prometheus: Option<crate::ChildProcess>,
    alertmanager: Option<crate::ChildProcess>,
}

/// `--prometheus` / `--alertmanager`: the alert webhook first, then Alertmanager, then
/// Prometheus pointed at it. What is not installed or does not start is reported and
/// skipped; the cluster runs either way.
async fn start_monitoring(
    plan: &ClusterPlan,
    options: &LaunchOptions,
) -> (Option<alertmanager::Webhook>, Monitors) {
    let mut monitors = Monitors::default();
    let mut webhook = None;
    if options.alertmanager {
        match alertmanager::Webhook::serve(plan.alert_webhook, true).await {
            Ok(hook) => webhook = Some(hook),
            Err(e) => eprintln!("alert webhook not started: {e}"),
        }
        match alertmanager::start(plan).await {
            Ok(Some(child)) => monitors.alertmanager = Some(child),
            Ok(None) => eprintln!(
                "alertmanager is not installed (apt-get install prometheus-alertmanager); continuing without it"
            ),
            Err(e) => eprintln!("alertmanager not started: {e}; continuing without it"),
        }
    }
    if options.prometheus || options.alertmanager {
        let setup = PrometheusSetup {
            alertmanager: monitors.alertmanager.is_some(),
            ..PrometheusSetup::default()
        };
        match prometheus::start(plan, setup).await {
            Ok(Some(child)) => monitors.prometheus = Some(child),
            Ok(None) => eprintln!(
                "prometheus is not installed (apt-get install prometheus); continuing without it"
            ),
            Err(e) => eprintln!("prometheus not started: {e}; continuing without it"),
        }
    }
    (webhook, monitors)
}

/// `--traces`: brokers trace `ratio` of the messages that come without a context, and
/// every process exports its spans to a collector run here, unless the environment names
/// another OTLP endpoint (the children inherit it).
async fn start_trace_collection(
    plan: &mut ClusterPlan,
    port_offset: u16,
    ratio: f64,
) -> Result<Option<TraceCollector>> {
    plan.broker_args
        .extend(["--message-sample-ratio".to_owned(), ratio.to_string()]);
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if let Ok(endpoint) = std::env::var(var) {
            println!("--traces: {var}={endpoint} is set; every process exports its spans there");
            return Ok(None);
        }
    }
    let port = LOCAL_OTLP_PORT.checked_add(port_offset).ok_or_else(|| {
        Error::Plan(format!(
            "port {LOCAL_OTLP_PORT} + offset {port_offset} > 65535"
        ))
    })?;
    let (collector, addr) = TraceCollector::start(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    plan.env.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://{addr}"),
        ),
        // Spans reach the viewer within a second rather than the SDK's default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "500".to_owned()),
    ]);
    println!("collecting traces on {addr} (OTLP/gRPC); each message trace is printed as a tree");
    Ok(Some(collector))
}

/// The status line every `interval` until a stop signal; unexpected exits are reported
/// loudly with the end of the process's log. With a trace collector, the most recent
/// finished message trace (if any) is printed above it.
async fn watch(
    cluster: &mut LocalCluster,
    signals: &mut StopSignals,
    interval: Duration,
    collector: Option<&TraceCollector>,
) -> Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut meter = RateMeter::default();
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = ticks.tick() => {}
        }
        for exited in cluster.reap_exited()? {
            if tty {
                println!();
            }
            eprintln!(
                "\n!!! {} EXITED UNEXPECTEDLY ({}); last lines of {}:\n{}\n",
                exited.name,
                exited.status,
                exited.log.display(),
                exited.tail
            );
        }
        if let Some(spans) =
            collector.and_then(|c| c.take_finished(Duration::from_secs(1), "mqtt.publish"))
        {
            if tty {
                println!();
            }
            println!("{}", render_tree(&spans));
        }
        let status = cluster.status().await;
        let rates = meter.update(
            Instant::now(),
            status.messages_received,
            status.messages_delivered,
        );
        let line = render(&status, rates);
        if tty {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
    if tty {
        println!();
    }
    Ok(())
}
