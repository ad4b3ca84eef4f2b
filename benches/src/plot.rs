//! A hand-written SVG of a run's timeline: throughput (sent and received per second)
//! above, latency (p50 and p99 per second) below. No plotting crate needed.

use std::fmt::Write as _;

use crate::report::Report;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;

/// One line of a panel.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

/// Renders the report's timeline as an SVG document.
pub fn svg(report: &Report) -> String {
    let t = &report.timeline;
    let throughput = [
        Series {
            name: "sent/s",
            color: "#1f77b4",
            values: t.iter().map(|s| s.sent as f64).collect(),
        },
        Series {
            name: "received/s",
            color: "#2ca02c",
            values: t.iter().map(|s| s.received as f64).collect(),
        },
    ];
    let latency = [
        Series {
            name: "p50 ms",
            color: "#ff7f0e",
            values: t.iter().map(|s| s.p50_us as f64 / 1000.0).collect(),
        },
        Series {
            name: "p99 ms",
            color: "#d62728",
            values: t.iter().map(|s| s.p99_us as f64 / 1000.0).collect(),
        },
    ];
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{} against {}: {} pub, {} sub, {} B, MQTT {}",
        report.scenario,
        report.target,
        report.publishers,
        report.subscribers,
        report.payload_size,
        report.mqtt
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#,
        escape(&title)
    );
    panel(&mut out, TOP, "messages per second", &throughput);
    panel(&mut out, TOP + PANEL + GAP, "latency (ms)", &latency);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the publishers started</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 8.0
    );
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, top: f64, label: &str, series: &[Series<'_>]) {
    let w = WIDTH - LEFT - RIGHT;
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let max = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0f64, f64::max)
            * 1.05,
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" transform="rotate(-90 {} {})" text-anchor="middle">{}</text>"#,
        18.0,
        top + PANEL / 2.0,
        18.0,
        top + PANEL / 2.0,
        escape(label)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = top + PANEL - PANEL * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + w,
            LEFT - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let x_of = |i: usize| LEFT + w * i as f64 / (n - 1) as f64;
    let step = (n / 10).max(1);
    for i in (0..n).step_by(step) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
            x_of(i),
            top + PANEL + 16.0
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), top + PANEL - PANEL * v / max))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            points.join(" ")
        );
        let lx = LEFT + 10.0 + 130.0 * k as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            top + 10.0,
            s.color,
            lx + 16.0,
            top + 15.0,
            escape(s.name)
        );
    }
}

/// The smallest 1, 2, 2.5 or 5 × 10^k at or above `v`, so axis ticks are round.
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// 1234567 → "1.23M".
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SecondReport;

    #[test]
    fn svg_has_both_panels_and_a_point_per_second() {
        let report = Report {
            scenario: "fan-in".into(),
            target: "ours <&>".into(),
            timeline: (0..5)
                .map(|i| SecondReport {
                    second: i,
                    sent: 1000 * i as u64,
                    received: 900 * i as u64,
                    p50_us: 200,
                    p99_us: 1500,
                    max_us: 3000,
                })
                .collect(),
            ..Default::default()
        };
        let svg = svg(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("ours &lt;&amp;&gt;"));
        let first_line = svg.lines().find(|l| l.contains("<polyline")).unwrap();
        assert_eq!(first_line.matches(',').count(), 5, "{first_line}");
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(nice_ceiling(10_500.0), 20_000.0);
        assert_eq!(nice_ceiling(0.81), 1.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
