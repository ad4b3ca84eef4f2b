//! Runs a [`Scenario`]: connect subscribers, then publishers, release the publishers,
//! drain, and account for every message. Every phase is bounded in time.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use mqtt_codec::QoS;
use tokio::time::Instant;

use crate::cli::ClientImpl;
use crate::client::native::Connection;
use crate::client::rumqttc_impl::{self, RumqttcConn};
use crate::client::tls::TlsSettings;
use crate::client::{
    roles, ClientOptions, PublishJob, PublisherOutcome, RunShared, SubscriberOutcome,
};
use crate::progress::Progress;

mod account;
use crate::report::{ConnReport, Report};
use crate::scenario::{Kind, Plan, Scenario, Stop};
use crate::stats::{latency_histogram, Live, Percentiles};
use account::{account, collect_errors, expected_deliveries};

/// Connections being set up at once.
const CONNECT_CONCURRENCY: usize = 256;
/// Time allowed per connection (TCP, TLS, CONNECT/CONNACK, SUBSCRIBE/SUBACK).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Deliveries are considered finished when none arrived for this long after the
/// publishers stopped (bounded by the scenario's drain time).
const QUIET_AFTER: Duration = Duration::from_secs(1);

/// How to run, besides the scenario itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub client: ClientImpl,
    pub tls: Option<TlsSettings>,
    /// Show the progress bar (still hidden when stdout is not a terminal).
    pub progress: bool,
    /// Name of what is measured, for the report.
    pub target: String,
}

/// A connected client of either implementation.
enum Conn {
    Native(Connection),
    /// Boxed: rumqttc's event loop is large.
    Rumqttc(Box<RumqttcConn>),
}

/// A short id that keeps client ids and topics of concurrent runs apart.
pub fn run_id() -> String {
    format!("{:08x}", (crate::payload::now_ns() / 1000) as u32)
}

fn client_options(
    s: &Scenario,
    opts: &RunOptions,
    addr: std::net::SocketAddr,
    id: &str,
) -> ClientOptions {
    ClientOptions {
        addr,
        client_id: id.to_owned(),
        version: s.version,
        clean_start: s.clean,
        session_expiry: s.session_expiry,
        keep_alive: s.keep_alive,
        tls: opts.tls.clone(),
        connect_timeout: CONNECT_TIMEOUT,
    }
}

async fn connect(
    s: &Scenario,
    opts: &RunOptions,
    addr: std::net::SocketAddr,
    id: &str,
    subscribe: Option<(&str, QoS)>,
) -> anyhow::Result<Conn> {
    let o = client_options(s, opts, addr, id);
    match opts.client {
        ClientImpl::Native => {
            let (mut c, _) = Connection::connect(&o).await?;
            if let Some((filter, qos)) = subscribe {
                c.subscribe(&[filter], qos, CONNECT_TIMEOUT).await?;
            }
            Ok(Conn::Native(c))
        }
        ClientImpl::Rumqttc => {
            let mut c = rumqttc_impl::connect(&o, s.inflight).await?;
            if let Some((filter, qos)) = subscribe {
                c.subscribe(filter, qos, CONNECT_TIMEOUT).await?;
            }
            Ok(Conn::Rumqttc(Box::new(c)))
        }
    }
}

/// Sets up `n` clients at `rate` per second (or as fast as possible), at most
/// [`CONNECT_CONCURRENCY`] at a time. Returns them in index order with their setup
/// times.
async fn connect_all<F, Fut, T>(
    n: usize,
    rate: Option<f64>,
    live: &Live,
    setup: &mut Histogram<u64>,
    make: F,
) -> (Vec<anyhow::Result<T>>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let mut results: Vec<(usize, anyhow::Result<T>, Duration)> = futures::stream::iter(0..n)
        .map(|i| {
            let fut = make(i);
            async move {
                if let Some(r) = rate {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / r)).await;
                }
                let t = Instant::now();
                let result = fut.await;
                (i, result, t.elapsed())
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .inspect(|(_, r, _)| {
            if r.is_ok() {
                Live::add(&live.connected, 1);
            }
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    results.sort_by_key(|(i, _, _)| *i);
    for (_, r, took) in &results {
        if r.is_ok() {
            setup.saturating_record((took.as_micros() as u64).max(1));
        }
    }
    (results.into_iter().map(|(_, r, _)| r).collect(), elapsed)
}

/// Runs a scenario to its end and returns the report (check [`Report::failed`]).
pub async fn run(s: &Scenario, opts: &RunOptions) -> anyhow::Result<Report> {
    let mut s = s.clone();
    let run = run_id();
    if s.topic_prefix.is_empty() {
        s.topic_prefix = format!("bench/{run}");
    }
    let plan = s.plan(&run);
    let shared = RunShared::new();
    let expected_clients = if s.kind == Kind::Conn {
        s.subscribers
    } else {
        plan.publishers.len() + plan.subscribers.len()
    };
    let progress = Progress::start(
        shared.live.clone(),
        opts.progress,
        format!("{} → {}", s.kind.as_str(), opts.target),
        expected_clients as u64,
    );
    let result = if s.kind == Kind::Conn {
        run_conn(&s, opts, &shared).await
    } else {
        run_messages(&s, opts, &plan, &shared).await
    };
    progress.finish();
    let mut report = result?;
    report.target = opts.target.clone();
    report.load_average = crate::report::load_average();
    report.judge();
    Ok(report)
}

/// `conn`: open the clients, hold them, close them.
async fn run_conn(s: &Scenario, opts: &RunOptions, shared: &RunShared) -> anyhow::Result<Report> {
    let run = run_id();
    let mut setup = latency_histogram();
    let (conns, elapsed) = connect_all(s.subscribers, s.conn_rate, &shared.live, &mut setup, |i| {
        let addr = s.sub_addrs[i % s.sub_addrs.len()];
        let id = format!("mqb-{run}-c{i}");
        async move { connect(s, opts, addr, &id, None).await }
    })
    .await;
    let mut report = base_report(s, opts);
    report.connections = conn_report(&conns, elapsed, &setup);
    collect_errors(
        &mut report,
        conns
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| format!("connect: {e:#}")),
    );
    tokio::time::sleep(s.hold).await;
    close_all(conns.into_iter().flatten()).await;
    Ok(report)
}

fn conn_report<T>(
    conns: &[anyhow::Result<T>],
    elapsed: Duration,
    setup: &Histogram<u64>,
) -> ConnReport {
    let ok = conns.iter().filter(|c| c.is_ok()).count() as u64;
    ConnReport {
        attempted: conns.len() as u64,
        connected: ok,
        failed: conns.len() as u64 - ok,
        setup_rate_per_s: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        setup_latency: Percentiles::of(setup),
    }
}

async fn close_all(conns: impl Iterator<Item = Conn>) {
    futures::stream::iter(conns)
        .for_each_concurrent(CONNECT_CONCURRENCY, |c| async move {
            match c {
                Conn::Native(c) => c.disconnect().await,
                Conn::Rumqttc(_) => {}
            }
        })
        .await;
}

fn base_report(s: &Scenario, opts: &RunOptions) -> Report {
    Report {
        scenario: s.kind.as_str().into(),
        client: format!("{:?}", opts.client).to_lowercase(),
        mqtt: s.version.as_str().into(),
        publishers: s.publishers,
        subscribers: s.subscribers,
        payload_size: s.payload_size,
        rate: s.rate,
        ..Default::default()
    }
}

/// Every scenario that moves messages.
async fn run_messages(
    s: &Scenario,
    opts: &RunOptions,
    plan: &Plan,
    shared: &RunShared,
) -> anyhow::Result<Report> {
    let mut report = base_report(s, opts);
    let mut setup = latency_histogram();
    let setup_start = Instant::now();
    let (subs, _) = connect_all(
        plan.subscribers.len(),
        s.conn_rate,
        &shared.live,
        &mut setup,
        |i| {
            let p = &plan.subscribers[i];
            async move { connect(s, opts, p.addr, &p.client_id, Some((&p.filter, p.qos))).await }
        },
    )
    .await;
    let (pubs, _) = connect_all(
        plan.publishers.len(),
        s.conn_rate,
        &shared.live,
        &mut setup,
        |i| {
            let p = &plan.publishers[i];
            async move { connect(s, opts, p.addr, &p.client_id, None).await }
        },
    )
    .await;
    let setup_elapsed = setup_start.elapsed();
    let all: Vec<&anyhow::Result<Conn>> = subs.iter().chain(&pubs).collect();
    let ok = all.iter().filter(|c| c.is_ok()).count() as u64;
    report.connections = ConnReport {
        attempted: all.len() as u64,
        connected: ok,
        failed: all.len() as u64 - ok,
        setup_rate_per_s: ok as f64 / setup_elapsed.as_secs_f64().max(1e-9),
        setup_latency: Percentiles::of(&setup),
    };
    if ok < all.len() as u64 {
        let first = all
            .iter()
            .find_map(|c| c.as_ref().err())
            .map(|e| format!("{e:#}"));
        close_all(subs.into_iter().chain(pubs).flatten()).await;
        anyhow::bail!(
            "{} of {} clients could not connect/subscribe; first error: {}",
            report.connections.failed,
            report.connections.attempted,
            first.unwrap_or_default()
        );
    }

    // Release: subscribers start reading, publishers start publishing.
    let epoch = crate::payload::now_ns();
    shared.epoch_ns.store(epoch, Ordering::Relaxed);
    let release = Instant::now();
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .flatten()
        .zip(&plan.subscribers)
        .map(|(c, p)| {
            let shared = shared.clone();
            let (id, ka) = (p.id, s.keep_alive);
            tokio::spawn(async move {
                match c {
                    Conn::Native(c) => roles::subscribe(c, id, ka, shared).await,
                    Conn::Rumqttc(c) => rumqttc_impl::subscribe(*c, id, shared).await,
                }
            })
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .flatten()
        .zip(&plan.publishers)
        .map(|(c, p)| {
            let job = PublishJob {
                id: p.id,
                topic: p.topic.clone(),
                qos: p.qos,
                payload_size: s.payload_size,
                rate: s.rate,
                count: match s.stop {
                    Stop::Count(n) => Some(n),
                    Stop::Duration(_) => None,
                },
                duration: match s.stop {
                    Stop::Duration(d) => Some(d),
                    Stop::Count(_) => None,
                },
                inflight: s.inflight,
                drain: s.drain,
            };
            let shared = shared.clone();
            let ka = s.keep_alive;
            tokio::spawn(async move {
                match c {
                    Conn::Native(c) => roles::publish(c, job, ka, shared).await,
                    Conn::Rumqttc(c) => rumqttc_impl::publish(*c, job, shared).await,
                }
            })
        })
        .collect();
    let mut publishers: Vec<PublisherOutcome> = Vec::new();
    for t in pub_tasks {
        publishers.push(t.await?);
    }
    report.publish_secs = release.elapsed().as_secs_f64();

    if s.kind == Kind::Sub {
        // Subscribers alone: listen for the run time.
        let listen = match s.stop {
            Stop::Duration(d) => d,
            Stop::Count(_) => s.drain,
        };
        tokio::time::sleep_until(release + listen).await;
    } else {
        let expected = expected_deliveries(plan, &publishers);
        wait_for_deliveries(&shared.live, expected, s.drain).await;
    }
    shared.stop_subscribers.cancel();
    let mut subscribers: Vec<SubscriberOutcome> = Vec::new();
    for t in sub_tasks {
        subscribers.push(t.await?);
    }
    account(&mut report, plan, &publishers, &subscribers, shared);
    Ok(report)
}

/// Waits until `expected` deliveries arrived, none arrived for [`QUIET_AFTER`], or
/// `drain` passed.
async fn wait_for_deliveries(live: &Live, expected: u64, drain: Duration) {
    let end = Instant::now() + drain;
    let mut last = (Live::get(&live.received), Instant::now());
    loop {
        let received = Live::get(&live.received);
        let now = Instant::now();
        if received >= expected || now >= end {
            return;
        }
        if received != last.0 {
            last = (received, now);
        } else if now.duration_since(last.1) >= QUIET_AFTER.min(drain) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
