//! The result of a run: counts per QoS, latency percentiles, connection setup, the
//! per-second timeline; printed as a table, written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::accounting::Tally;
use crate::stats::Percentiles;

/// Counts and latency of the messages of one QoS.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QosReport {
    /// PUBLISH packets written by publishers of this QoS.
    pub sent: u64,
    /// Publishes acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP; QoS 0: = sent).
    pub acked: u64,
    /// Receiver-side accounting (expected = sent × receivers of each message).
    #[serde(flatten)]
    pub tally: Tally,
    pub latency: Percentiles,
}

/// Connection setup.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConnReport {
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    /// Connections established per second of setup time.
    pub setup_rate_per_s: f64,
    /// TCP connect to CONNACK (and SUBACK for subscribers).
    pub setup_latency: Percentiles,
}

/// One second of the run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SecondReport {
    pub second: usize,
    pub sent: u64,
    pub received: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// A whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    /// What was measured (e.g. the broker's name in `compare`).
    pub target: String,
    pub client: String,
    pub mqtt: String,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload_size: usize,
    /// Per-publisher rate, messages/s; none = unlimited.
    pub rate: Option<f64>,
    /// Release of the publishers to their end (acknowledgements included).
    pub publish_secs: f64,
    /// Release of the publishers to the last delivery.
    pub receive_secs: f64,
    pub sent: u64,
    pub received: u64,
    pub send_rate: f64,
    pub receive_rate: f64,
    pub by_qos: BTreeMap<String, QosReport>,
    pub latency: Percentiles,
    pub connections: ConnReport,
    pub timeline: Vec<SecondReport>,
    /// Payloads without our header.
    pub foreign: u64,
    pub error_count: usize,
    /// The first errors (at most 20).
    pub errors: Vec<String>,
    /// Why the run counts as failed (QoS 1/2 loss, client errors).
    pub failures: Vec<String>,
    /// 1, 5 and 15 minute load averages at the end (Linux).
    pub load_average: Option<[f64; 3]>,
    /// CPU seconds the broker process used during the run (`compare` only).
    pub broker_cpu_secs: Option<f64>,
}

impl Report {
    /// True when a QoS 1/2 message was lost or a client failed.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Fills `failures` from the counts.
    pub fn judge(&mut self) {
        for (qos, r) in &self.by_qos {
            if qos != "0" && r.tally.lost > 0 {
                self.failures.push(format!(
                    "QoS {qos}: {} of {} messages lost",
                    r.tally.lost, r.tally.expected
                ));
            }
            if qos != "0" && r.acked < r.sent {
                self.failures.push(format!(
                    "QoS {qos}: {} of {} publishes never acknowledged",
                    r.sent - r.acked,
                    r.sent
                ));
            }
        }
        if self.connections.failed > 0 {
            self.failures.push(format!(
                "{} of {} connections failed",
                self.connections.failed, self.connections.attempted
            ));
        }
        if self.error_count > 0 {
            self.failures.push(format!(
                "{} client errors (first: {})",
                self.error_count, self.errors[0]
            ));
        }
    }

    /// The end-of-run table; `color` adds ANSI red to failures.
    pub fn table(&self, color: bool) -> String {
        let (red, reset) = if color {
            ("\x1b[31m", "\x1b[0m")
        } else {
            ("", "")
        };
        let mut s = String::new();
        let rate = self
            .rate
            .map_or("unlimited".into(), |r| format!("{r} msg/s"));
        if self.scenario == "conn" {
            let _ = writeln!(
                s,
                "conn against {} — {} clients, MQTT {}, client {}",
                self.target, self.subscribers, self.mqtt, self.client
            );
        } else {
            let _ = writeln!(
                s,
                "{} against {} — {} pub, {} sub, MQTT {}, {} B, {} per publisher, client {}",
                self.scenario,
                self.target,
                self.publishers,
                self.subscribers,
                self.mqtt,
                self.payload_size,
                rate,
                self.client
            );
        }
        let c = &self.connections;
        let _ = writeln!(
            s,
            "connections  {} / {} ok, {:.0} conn/s, setup p50 {} p99 {} max {}",
            c.connected,
            c.attempted,
            c.setup_rate_per_s,
            ms(c.setup_latency.p50_us),
            ms(c.setup_latency.p99_us),
            ms(c.setup_latency.max_us)
        );
        if !self.by_qos.is_empty() {
            let _ = writeln!(
                s,
                "throughput   sent {:.0} msg/s over {:.1} s, received {:.0} msg/s over {:.1} s",
                self.send_rate, self.publish_secs, self.receive_rate, self.receive_secs
            );
            let _ = writeln!(
                s,
                "{:<4} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "qos",
                "sent",
                "acked",
                "expected",
                "received",
                "lost",
                "dup",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max"
            );
            for (qos, r) in &self.by_qos {
                if self.subscribers == 0 {
                    // Publishers only: nothing was received here.
                    let _ = writeln!(
                        s,
                        "{qos:<4} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
                        r.sent, r.acked, "-", "-", "-", "-"
                    );
                    continue;
                }
                let t = &r.tally;
                let lost = if qos != "0" && t.lost > 0 {
                    format!("{red}{:>8}{reset}", t.lost)
                } else {
                    format!("{:>8}", t.lost)
                };
                let l = &r.latency;
                let _ = writeln!(
                    s,
                    "{:<4} {:>10} {:>10} {:>10} {:>10} {} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    qos,
                    r.sent,
                    r.acked,
                    t.expected,
                    t.received,
                    lost,
                    t.duplicated,
                    ms(l.p50_us),
                    ms(l.p90_us),
                    ms(l.p99_us),
                    ms(l.p999_us),
                    ms(l.max_us)
                );
            }
        }
        if self.foreign > 0 {
            let _ = writeln!(
                s,
                "foreign payloads (not from mqtt-bench): {}",
                self.foreign
            );
        }
        if let Some([a, b, c]) = self.load_average {
            let _ = writeln!(s, "load average {a:.2} {b:.2} {c:.2}");
        }
        for f in &self.failures {
            let _ = writeln!(s, "{red}FAIL: {f}{reset}");
        }
        s
    }
}

/// Microseconds as milliseconds for tables.
pub fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// The machine's load averages (Linux), or `None`.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with_loss(qos: &str, lost: u64) -> Report {
        let mut r = Report {
            scenario: "p2p".into(),
            publishers: 1,
            subscribers: 1,
            ..Default::default()
        };
        r.by_qos.insert(
            qos.into(),
            QosReport {
                sent: 100,
                acked: 100,
                tally: Tally {
                    expected: 100,
                    received: 100 - lost,
                    lost,
                    ..Default::default()
                },
                latency: Default::default(),
            },
        );
        r.judge();
        r
    }

    #[test]
    fn qos1_loss_fails_and_is_red_qos0_loss_does_not() {
        let r = report_with_loss("1", 3);
        assert!(r.failed());
        let table = r.table(true);
        assert!(table.contains("\x1b[31m       3\x1b[0m"), "{table}");
        assert!(
            table.contains("FAIL: QoS 1: 3 of 100 messages lost"),
            "{table}"
        );
        let r = report_with_loss("0", 3);
        assert!(!r.failed());
        assert!(!r.table(true).contains("\x1b[31m"));
    }

    #[test]
    fn json_has_the_documented_fields() {
        let r = report_with_loss("1", 0);
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["by_qos"]["1"]["lost"], 0);
        assert_eq!(v["by_qos"]["1"]["expected"], 100);
        assert!(v["latency"]["p999_us"].is_number());
        assert!(v["timeline"].is_array());
    }
}
