//! A small parser for OpenMetrics and Prometheus text, enough for tests to assert on
//! sample values ("this counter went up by one") and exemplars.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Sample name, with any suffix (`_total`, `_bucket`, …).
    pub name: String,
    /// Label names to values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
    /// The OpenMetrics exemplar on this line, if any.
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar (`# {trace_id="…"} 0.12 1.7e9`).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Exemplar labels, e.g. `trace_id`.
    pub labels: BTreeMap<String, String>,
    /// The observed value.
    pub value: f64,
}

/// Parses every sample line of `text`; comment and malformed lines are skipped.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

/// The value of the first sample named `name` whose labels include all of `labels`.
pub fn find(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let (sample_part, exemplar_part) = match rest.find(" # ") {
        Some(at) => (&rest[..at], Some(&rest[at + 3..])),
        None => (rest, None),
    };
    let value = parse_value(sample_part.split_whitespace().next()?)?;
    let exemplar = exemplar_part.and_then(|text| {
        let (labels, rest) = parse_labels(text.strip_prefix('{')?)?;
        let value = parse_value(rest.split_whitespace().next()?)?;
        Some(Exemplar { labels, value })
    });
    Some(Sample {
        name,
        labels,
        value,
        exemplar,
    })
}

/// Parses `k="v",k2="v2"}` (the opening brace already consumed); returns the labels and
/// the text after the closing brace.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_owned();
        let mut chars = text[eq + 1..].strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        text = &text[eq + 1 + 1 + end + 1..];
    }
}

fn parse_value(text: &str) -> Option<f64> {
    // Rust parses "inf"/"+inf"/"NaN" case-insensitively, which covers "+Inf" and "NaN".
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_values_and_exemplars() {
        let text = "# TYPE x counter\n\
                    x_total{a=\"1\",b=\"q\\\"uote, }\"} 3\n\
                    up 1\n\
                    h_bucket{le=\"+Inf\"} 2 # {trace_id=\"abc\"} 0.5 1700000000.1\n\
                    # EOF\n";
        let samples = parse_metrics(text);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["b"], "q\"uote, }");
        assert_eq!(find(&samples, "x_total", &[("a", "1")]), Some(3.0));
        assert_eq!(find(&samples, "up", &[]), Some(1.0));
        assert_eq!(find(&samples, "up", &[("a", "1")]), None);
        let exemplar = samples[2].exemplar.as_ref().unwrap();
        assert_eq!(exemplar.labels["trace_id"], "abc");
        assert_eq!(exemplar.value, 0.5);
        assert_eq!(samples[2].labels["le"], "+Inf");
    }
}
