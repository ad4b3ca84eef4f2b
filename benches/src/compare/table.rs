//! The comparison table: medians per scenario and broker, ratios against ours, and
//! whether the goals are met.

use std::fmt::Write as _;

use super::brokers::BrokerKind;
use super::{Comparison, Preset};
use crate::report::Report;

/// One metric of one scenario across brokers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: &'static str,
    /// Value per broker (median over rounds), in the row's unit.
    pub values: Vec<(BrokerKind, Option<f64>)>,
    pub vs_rumqttd: Option<f64>,
    pub vs_mosquitto: Option<f64>,
    /// The goal for this row and whether it is met: `None` when a broker it is
    /// measured against was not part of the run.
    pub goal: Option<(String, Option<bool>)>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn metric(reports: Option<&Vec<Report>>, f: impl Fn(&Report) -> f64) -> Option<f64> {
    let ok: Vec<f64> = reports?
        .iter()
        .filter(|r| r.connections.connected > 0)
        .map(f)
        .filter(|v| !v.is_nan())
        .collect();
    median(ok)
}

/// Builds the rows from the runs.
pub fn rows(cmp: &Comparison) -> Vec<Row> {
    let brokers = [BrokerKind::Ours, BrokerKind::Rumqttd, BrokerKind::Mosquitto];
    let mut rows = Vec::new();
    for (preset, by_broker) in &cmp.runs {
        type Metric = (&'static str, fn(&Report) -> f64);
        let metrics: [Metric; 5] = [
            ("received msg/s", |r| r.receive_rate),
            ("broker CPU µs per delivery", |r| {
                r.broker_cpu_secs
                    .map_or(f64::NAN, |cpu| cpu * 1e6 / r.received.max(1) as f64)
            }),
            ("latency p50 ms", |r| r.latency.p50_us as f64 / 1000.0),
            ("latency p99 ms", |r| r.latency.p99_us as f64 / 1000.0),
            ("lost (QoS 1/2) or failures", |r| {
                r.by_qos
                    .iter()
                    .filter(|(q, _)| *q != "0")
                    .map(|(_, t)| t.tally.lost as f64)
                    .sum::<f64>()
                    + r.failures.len() as f64
            }),
        ];
        for (name, f) in metrics {
            let values: Vec<(BrokerKind, Option<f64>)> = brokers
                .iter()
                .map(|&b| (b, metric(by_broker.get(&b), f)))
                .collect();
            let get = |b: BrokerKind| values.iter().find(|(k, _)| *k == b).and_then(|(_, v)| *v);
            let ratio = |other: BrokerKind| match (get(BrokerKind::Ours), get(other)) {
                (Some(o), Some(t)) if t > 0.0 => Some(o / t),
                _ => None,
            };
            let (vr, vm) = (ratio(BrokerKind::Rumqttd), ratio(BrokerKind::Mosquitto));
            let goal = match (preset, name) {
                (Preset::FanInQos0 | Preset::FanOutQos0, "received msg/s") => Some((
                    "≥1.5× mosquitto, ≥1.2× rumqttd".to_owned(),
                    vm.zip(vr).map(|(vm, vr)| vm >= 1.5 && vr >= 1.2),
                )),
                (Preset::P2pQos1, "latency p99 ms") => {
                    let best = get(BrokerKind::Rumqttd)
                        .zip(get(BrokerKind::Mosquitto))
                        .map(|(r, m)| r.min(m));
                    Some((
                        "≤ the better of the two".to_owned(),
                        best.map(|best| get(BrokerKind::Ours).is_some_and(|o| o <= best)),
                    ))
                }
                _ => None,
            };
            rows.push(Row {
                scenario: preset.as_str().into(),
                metric: name,
                values,
                vs_rumqttd: vr,
                vs_mosquitto: vm,
                goal,
            });
        }
    }
    rows
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}×"))
}

/// The table as Markdown (also readable in a terminal).
pub fn markdown(cmp: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | metric | ours | rumqttd | mosquitto | ours/rumqttd | ours/mosquitto | goal |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
    for r in rows(cmp) {
        let v = |i: usize| fmt_value(r.values[i].1);
        let goal = r.goal.as_ref().map_or(String::new(), |(g, met)| {
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not judged (needs rumqttd and mosquitto in the run)",
            };
            format!("{g}: {verdict}")
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.metric,
            v(0),
            v(1),
            v(2),
            fmt_ratio(r.vs_rumqttd),
            fmt_ratio(r.vs_mosquitto),
            goal
        );
    }
    if !cmp.memory.is_empty() {
        let mem = |b: BrokerKind| cmp.memory.get(&b).map(|m| m.kib_per_connection);
        let n = cmp.memory.values().next().map_or(0, |m| m.connections);
        let ratio = |b: BrokerKind| match (mem(BrokerKind::Ours), mem(b)) {
            (Some(o), Some(t)) if t > 0.0 => Some(o / t),
            _ => None,
        };
        let _ = writeln!(
            s,
            "| {n} idle connections | RSS KiB per connection | {} | {} | {} | {} | {} | reported |",
            fmt_value(mem(BrokerKind::Ours)),
            fmt_value(mem(BrokerKind::Rumqttd)),
            fmt_value(mem(BrokerKind::Mosquitto)),
            fmt_ratio(ratio(BrokerKind::Rumqttd)),
            fmt_ratio(ratio(BrokerKind::Mosquitto)),
        );
    }
    for (b, why) in &cmp.skipped {
        let _ = writeln!(s, "\n{} skipped: {why}", b.as_str());
    }
    let la =
        |l: Option<[f64; 3]>| l.map_or("?".into(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"));
    let _ = writeln!(
        s,
        "\nMachine: {}. Load average at start {}, at end {}.",
        cmp.machine,
        la(cmp.load_average_start),
        la(cmp.load_average_end)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rate: f64, p99_us: u64) -> Report {
        let mut r = Report {
            receive_rate: rate,
            ..Default::default()
        };
        r.latency.p99_us = p99_us;
        r.connections.connected = 1;
        r
    }

    #[test]
    fn ratios_medians_and_goals() {
        let mut cmp = Comparison::default();
        let fan_in = cmp.runs.entry(Preset::FanInQos0).or_default();
        fan_in.insert(
            BrokerKind::Ours,
            vec![report(300.0, 1), report(100.0, 1), report(200.0, 1)],
        );
        fan_in.insert(BrokerKind::Rumqttd, vec![report(150.0, 1)]);
        fan_in.insert(BrokerKind::Mosquitto, vec![report(100.0, 1)]);
        let p2p = cmp.runs.entry(Preset::P2pQos1).or_default();
        p2p.insert(BrokerKind::Ours, vec![report(1.0, 3000)]);
        p2p.insert(BrokerKind::Rumqttd, vec![report(1.0, 2000)]);
        p2p.insert(BrokerKind::Mosquitto, vec![report(1.0, 4000)]);
        let rows = rows(&cmp);
        let tput = &rows[0];
        assert_eq!(tput.values[0].1, Some(200.0), "median of three rounds");
        assert!((tput.vs_rumqttd.unwrap() - 200.0 / 150.0).abs() < 1e-9);
        assert_eq!(tput.vs_mosquitto, Some(2.0));
        assert_eq!(tput.goal.as_ref().unwrap().1, Some(true));
        let p99 = rows
            .iter()
            .find(|r| r.scenario == "p2p qos1" && r.metric == "latency p99 ms")
            .unwrap();
        assert_eq!(
            p99.goal.as_ref().unwrap().1,
            Some(false),
            "3 ms > rumqttd 2 ms"
        );
        let md = markdown(&cmp);
        assert!(
            md.contains(
                "| fan-in qos0 | received msg/s | 200.00 | 150.00 | 100.00 | 1.33× | 2.00× |"
            ),
            "{md}"
        );
        assert!(md.contains("**missed**"));
    }

    #[test]
    fn a_goal_against_a_broker_left_out_is_not_judged() {
        let mut cmp = Comparison::default();
        let fan_out = cmp.runs.entry(Preset::FanOutQos0).or_default();
        fan_out.insert(BrokerKind::Ours, vec![report(300.0, 1)]);
        fan_out.insert(BrokerKind::Rumqttd, vec![report(100.0, 1)]);
        let p2p = cmp.runs.entry(Preset::P2pQos1).or_default();
        p2p.insert(BrokerKind::Ours, vec![report(1.0, 1000)]);
        p2p.insert(BrokerKind::Mosquitto, vec![report(1.0, 4000)]);
        let rows = rows(&cmp);
        let goal = |scenario: &str, metric: &str| {
            rows.iter()
                .find(|r| r.scenario == scenario && r.metric == metric)
                .and_then(|r| r.goal.clone())
                .unwrap()
                .1
        };
        assert_eq!(goal("fan-out qos0", "received msg/s"), None, "no mosquitto");
        assert_eq!(goal("p2p qos1", "latency p99 ms"), None, "no rumqttd");
        let md = markdown(&cmp);
        assert!(!md.contains("**missed**"), "{md}");
        assert!(md.contains("not judged"), "{md}");
    }
}
