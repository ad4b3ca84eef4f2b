//! The metrics reference, `deploy/metrics.md`: every metric family each service exports,
//! with its type, labels and help (units are in the names: `_seconds`, `_bytes`), generated from the `/metrics` of the live test
//! cluster (never typed by hand). The live test compares it with what the processes
//! export; `UPDATE_DEPLOY=1` rewrites it.

use std::collections::{BTreeMap, BTreeSet};

use cluster_tests::docker::repo_root;

pub const REFERENCE: &str = "deploy/metrics.md";

/// Labels every series carries (the identity labels), listed once at the top.
const IDENTITY: [&str; 5] = ["service", "pod", "namespace", "node", "cluster"];

/// One metric family as exported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub labels: BTreeSet<String>,
}

/// The families of one `/metrics` text (OpenMetrics or Prometheus 0.0.4), by name.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        let meta = |prefix: &str| {
            line.strip_prefix(prefix).map(|rest| {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                (name.to_owned(), value.to_owned())
            })
        };
        if let Some((name, kind)) = meta("# TYPE ") {
            let base = base_name(&name, &kind);
            families.entry(base).or_default().kind = kind;
        } else if let Some((name, help)) = meta("# HELP ") {
            families.entry(name).or_default().help = help;
        }
    }
    // 0.0.4 text names counters by their sample (`_total`): HELP may come before TYPE.
    let names: Vec<String> = families.keys().cloned().collect();
    for name in &names {
        if families[name].kind.is_empty() {
            let base = name.strip_suffix("_total").unwrap_or(name);
            if let Some(owner) = names
                .iter()
                .find(|f| *f != name && f.as_str() == base && !families[*f].kind.is_empty())
            {
                let help = families.remove(name).unwrap_or_default().help;
                families.get_mut(owner).unwrap().help = help;
            }
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sample = line.split(['{', ' ']).next().unwrap_or_default();
        let Some(family) = families
            .keys()
            .filter(|f| sample.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .cloned()
        else {
            continue;
        };
        if let Some(labels) = line
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
        {
            for pair in split_labels(labels.0) {
                let name = pair.split('=').next().unwrap_or_default().trim();
                if !name.is_empty() && name != "le" && !IDENTITY.contains(&name) {
                    families
                        .get_mut(&family)
                        .unwrap()
                        .labels
                        .insert(name.to_owned());
                }
            }
        }
    }
    families
}

/// A counter's family name without the `_total` the 0.0.4 text puts on its TYPE line.
fn base_name(name: &str, kind: &str) -> String {
    match kind {
        "counter" => name.strip_suffix("_total").unwrap_or(name).to_owned(),
        _ => name.to_owned(),
    }
}

/// `a="x",b="y,z"` → `a="x"`, `b="y,z"` (commas inside quotes stay).
fn split_labels(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Merges the families of several processes of one service.
pub fn merge(into: &mut BTreeMap<String, Family>, more: BTreeMap<String, Family>) {
    for (name, family) in more {
        let entry = into.entry(name).or_insert_with(|| Family {
            labels: BTreeSet::new(),
            ..family.clone()
        });
        entry.labels.extend(family.labels);
    }
}

/// The Markdown reference for `services` (service name → its families).
pub fn render(services: &BTreeMap<String, BTreeMap<String, Family>>) -> String {
    let mut out = String::from(
        "# Metrics reference\n\n\
         Generated from the `/metrics` of the nine processes of a local cluster under the \
         live monitoring test's traffic; do not edit. To regenerate:\n\n\
         ```\nUPDATE_DEPLOY=1 cargo test -p cluster-tests --test monitoring live\n```\n\n\
         Every series also carries the identity labels `service`, `pod`, `namespace`, \
         `node` and `cluster` (README, \"Watch it\"); histograms add `le`. Counters are \
         exposed with `_total` (and `_created` in OpenMetrics), histograms as `_bucket`, \
         `_sum` and `_count`. A family whose labels read \"–\" had no series in the test.\n",
    );
    // Families every service exports (process, runtime, gRPC, ...) are listed once.
    let mut common: Option<BTreeMap<String, Family>> = None;
    for families in services.values() {
        common = Some(match common {
            None => families.clone(),
            Some(c) => c
                .into_iter()
                .filter(|(name, f)| families.get(name).is_some_and(|g| g.kind == f.kind))
                .map(|(name, mut f)| {
                    f.labels.extend(families[&name].labels.iter().cloned());
                    (name, f)
                })
                .collect(),
        });
    }
    let common = common.unwrap_or_default();
    out += &section("Every service", &common);
    for (service, families) in services {
        let own: BTreeMap<String, Family> = families
            .iter()
            .filter(|(name, _)| !common.contains_key(*name))
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect();
        out += &section(&format!("`{service}`"), &own);
    }
    out
}

fn section(title: &str, families: &BTreeMap<String, Family>) -> String {
    if families.is_empty() {
        return format!("\n## {title}\n\nNothing beyond the families every service exports.\n");
    }
    let mut out = format!("\n## {title}\n\n| metric | type | labels | help |\n|---|---|---|---|\n");
    for (name, f) in families {
        let labels = if f.labels.is_empty() {
            "–".to_owned()
        } else {
            f.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "| `{name}` | {} | {labels} | {} |\n",
            f.kind,
            f.help.replace('|', "\\|")
        );
    }
    out
}

/// Checks the committed reference against what the services export: the same families,
/// types and help, and every label seen here listed there (a label can be
/// missing from one run's traffic, never from the reference). With `UPDATE_DEPLOY`
/// set, rewrites it first.
pub fn check(services: &BTreeMap<String, BTreeMap<String, Family>>) {
    let rendered = render(services);
    let path = repo_root().join(REFERENCE);
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &rendered).expect("reference written");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let rows = |text: &str| -> BTreeMap<String, (String, BTreeSet<String>)> {
        text.lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let name = cells.first()?.trim_start_matches("| ").trim_matches('`');
                let labels = cells
                    .get(2)?
                    .split(", ")
                    .map(|s| s.trim_matches('`').to_owned())
                    .filter(|s| s != "–")
                    .collect();
                let rest = format!("{} | {}", cells.get(1)?, cells[3..].join(" | "));
                Some((name.to_owned(), (rest, labels)))
            })
            .collect()
    };
    let (want, have) = (rows(&rendered), rows(&committed));
    let mut problems = Vec::new();
    for (name, (meta, labels)) in &want {
        match have.get(name) {
            None => problems.push(format!("{name} is exported but not in {REFERENCE}")),
            Some((m, l)) => {
                if m != meta {
                    problems.push(format!(
                        "{name}: {REFERENCE} says `{m}`, the service `{meta}`"
                    ));
                }
                for label in labels.difference(l) {
                    problems.push(format!("{name}: label {label} is not in {REFERENCE}"));
                }
            }
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!(
            "{name} is in {REFERENCE} but no service exports it"
        ));
    }
    assert!(
        problems.is_empty(),
        "{REFERENCE} is out of date; run\n  UPDATE_DEPLOY=1 cargo test -p cluster-tests \
         --test monitoring live\n{}",
        problems.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS: &str = r#"# HELP robustmq_packets_received Packets received.
# TYPE robustmq_packets_received counter
robustmq_packets_received_total{service="b",pod="p",packet_type="publish",listener="tcp"} 3
robustmq_packets_received_created{service="b",packet_type="publish",listener="tcp"} 1.7e9
# HELP robustmq_message_latency_seconds Latency.
# TYPE robustmq_message_latency_seconds histogram
# UNIT robustmq_message_latency_seconds seconds
robustmq_message_latency_seconds_bucket{qos="1",path="local",le="0.1"} 1 # {trace_id="ab,c"} 0.05
robustmq_message_latency_seconds_count{qos="1",path="local"} 1
# HELP robustmq_connections_active Open connections.
# TYPE robustmq_connections_active gauge
# EOF
"#;

    #[test]
    fn families_types_and_labels() {
        let f = parse(OPENMETRICS);
        assert_eq!(f.len(), 3, "{f:?}");
        let packets = &f["robustmq_packets_received"];
        assert_eq!(packets.kind, "counter");
        assert_eq!(packets.help, "Packets received.");
        assert_eq!(
            packets.labels,
            BTreeSet::from(["listener".to_owned(), "packet_type".to_owned()])
        );
        let latency = &f["robustmq_message_latency_seconds"];
        assert_eq!(latency.kind, "histogram");
        assert_eq!(
            latency.labels,
            BTreeSet::from(["path".to_owned(), "qos".to_owned()])
        );
        assert!(f["robustmq_connections_active"].labels.is_empty());
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let text = "# HELP robustmq_x_total Xs.\n# TYPE robustmq_x_total counter\n\
                    robustmq_x_total{reason=\"a\"} 1\n";
        let f = parse(text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f["robustmq_x"].help, "Xs.");
        assert!(f["robustmq_x"].labels.contains("reason"));
    }

    #[test]
    fn common_families_are_listed_once() {
        let a = parse(OPENMETRICS);
        let mut b = a.clone();
        b.remove("robustmq_connections_active");
        let services = BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]);
        let text = render(&services);
        assert_eq!(
            text.matches("`robustmq_packets_received`").count(),
            1,
            "{text}"
        );
        assert!(text.contains("## `a`\n"), "{text}");
        assert!(
            text.contains("## `b`\n\nNothing beyond the families every service exports.\n"),
            "{text}"
        );
        assert!(
            text.contains("| `robustmq_connections_active` | gauge | – | Open connections. |"),
            "{text}"
        );
    }
}
