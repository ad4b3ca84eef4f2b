//! Encoding a registry for a scrape: OpenMetrics text, or the classic Prometheus text
//! format (0.0.4) for scrapers that do not ask for OpenMetrics.
//!
//! prometheus-client only writes OpenMetrics. Prometheus itself always offers OpenMetrics
//! in its `Accept` header (and prefers it, since only OpenMetrics carries exemplars), so
//! the conversion is for `curl`, older agents and tools that send `text/plain` or nothing
//! (client_golang also answers those with 0.0.4). The conversion is line-based:
//!
//! * `# EOF` and `# UNIT` lines are dropped (0.0.4 has neither);
//! * exemplars (` # {trace_id="…"} 0.1 1.7e9`) are cut from sample lines;
//! * counter families are renamed to their `_total` sample name in `# HELP`/`# TYPE`,
//!   because 0.0.4 parsers match metadata to samples by exact name;
//! * `info`, `stateset`, `gaugehistogram` and `unknown` types become `gauge`/`untyped`.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use crate::histogram::ExemplarWriter;

/// Content type of an OpenMetrics 1.0 text response.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of a Prometheus 0.0.4 text response.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats a scrape can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (with exemplars).
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Prometheus,
}

impl Format {
    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics when it is acceptable
    /// (q > 0) and weighted at least as high as plain text, else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut openmetrics = 0.0_f32;
        let mut plain = 0.0_f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Encodes `registry` in `format`.
///
/// OpenMetrics text carries the exemplars of [`LatencyHistogram`]s, which only this
/// function's writer adds (see [`ExemplarWriter`]); Prometheus text has none.
///
/// [`LatencyHistogram`]: crate::LatencyHistogram
pub fn encode_registry(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    const CAPACITY: usize = 16 * 1024;
    Ok(match format {
        Format::OpenMetrics => ExemplarWriter::encode(CAPACITY, |writer| encode(writer, registry))?,
        Format::Prometheus => {
            let mut text = String::with_capacity(CAPACITY);
            encode(&mut text, registry)?;
            openmetrics_to_prometheus(&text)
        }
    })
}

/// Converts OpenMetrics text, as prometheus-client writes it, into Prometheus 0.0.4 text.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // TYPE comes after HELP, but both need the family's type, so look ahead per family.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = lines[i + 1..]
                .iter()
                .take(2)
                .find_map(|l| type_of(l, name))
                .unwrap_or("unknown");
            out.push_str("# HELP ");
            out.push_str(&family_name(name, kind));
            out.push(' ');
            out.push_str(help);
            out.push('\n');
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            out.push_str("# TYPE ");
            out.push_str(&family_name(name, kind));
            out.push(' ');
            out.push_str(match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" | "stateset" => "gauge",
                _ => "untyped",
            });
            out.push('\n');
        } else if line.starts_with('#') || line.is_empty() {
            // `# EOF`, `# UNIT` and any other comment have no 0.0.4 equivalent.
        } else {
            out.push_str(strip_exemplar(line));
            out.push('\n');
        }
    }
    out
}

/// The type on a `# TYPE <name> <type>` line for `name`.
fn type_of<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("# TYPE ")?.strip_prefix(name)?;
    rest.strip_prefix(' ')
}

/// The 0.0.4 metadata name of an OpenMetrics family.
fn family_name(name: &str, kind: &str) -> String {
    match kind {
        "counter" => format!("{name}_total"),
        "info" => format!("{name}_info"),
        _ => name.to_owned(),
    }
}

/// A sample line without its exemplar. The exemplar starts at the first ` # ` after the
/// label set; a `#` inside a quoted label value is not a separator.
fn strip_exemplar(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut start = 0;
    if let Some(open) = line
        .find('{')
        .filter(|&open| open < line.find(' ').unwrap_or(usize::MAX))
    {
        let mut in_quotes = false;
        let mut escaped = false;
        start = line.len();
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                _ if escaped => escaped = false,
                b'\\' if in_quotes => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b'}' if !in_quotes => {
                    start = i;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[start..].find(" # ") {
        Some(at) => &line[..start + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_prometheus_expects() {
        let prometheus3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
            application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,\
            text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus3)), Format::OpenMetrics);
        let prometheus2 =
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus2)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0,text/plain")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn converts_openmetrics_to_prometheus_text() {
        let om = "# HELP rq_packets Packets received.\n\
                  # TYPE rq_packets counter\n\
                  rq_packets_total{kind=\"a # b\"} 3\n\
                  # HELP rq_latency_seconds Latency.\n\
                  # TYPE rq_latency_seconds histogram\n\
                  # UNIT rq_latency_seconds seconds\n\
                  rq_latency_seconds_sum 0.5\n\
                  rq_latency_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"abc\"} 0.05 1700000000.0\n\
                  rq_latency_seconds_bucket{le=\"+Inf\"} 1\n\
                  # HELP rq_up Up.\n\
                  # TYPE rq_up gauge\n\
                  rq_up 1\n\
                  # EOF\n";
        let expected = "# HELP rq_packets_total Packets received.\n\
                        # TYPE rq_packets_total counter\n\
                        rq_packets_total{kind=\"a # b\"} 3\n\
                        # HELP rq_latency_seconds Latency.\n\
                        # TYPE rq_latency_seconds histogram\n\
                        rq_latency_seconds_sum 0.5\n\
                        rq_latency_seconds_bucket{le=\"0.1\"} 1\n\
                        rq_latency_seconds_bucket{le=\"+Inf\"} 1\n\
                        # HELP rq_up Up.\n\
                        # TYPE rq_up gauge\n\
                        rq_up 1\n";
        assert_eq!(openmetrics_to_prometheus(om), expected);
    }

    #[test]
    fn strips_exemplar_without_labels() {
        assert_eq!(strip_exemplar("x_bucket 1 # {a=\"b\"} 2"), "x_bucket 1");
        assert_eq!(strip_exemplar("x{a=\"}\\\" # \"} 1"), "x{a=\"}\\\" # \"} 1");
    }
}
