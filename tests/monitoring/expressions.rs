//! Finding the PromQL of the shipped dashboards and rules, and the parts of an alert's
//! expression that must return series on a healthy cluster.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped dashboards: file name and parsed JSON.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("dashboard readable");
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// Every panel of a dashboard, those inside collapsed rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A dashboard query as Prometheus gets it: Grafana's variables replaced by what "All"
/// and a short rate interval stand for.
pub fn substitute_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("${cluster}", ".*")
        .replace("$cluster", ".*")
        .replace("${namespace}", ".*")
        .replace("$namespace", ".*")
        .replace("${pod}", ".*")
        .replace("$pod", ".*")
}

/// The parts of an alert expression whose value it compares: `sum(x) < 2` → `sum(x)`;
/// `(a > 1 and b > 1) or c > 2` → `a`, `b`, `c`. Numbers and arithmetic on numbers are
/// left out. Each part must return series on a healthy cluster (that the metric exists
/// and is labelled as the rule expects); whether the comparison is right is what the
/// promtool unit tests check.
pub fn value_parts(expr: &str) -> Vec<String> {
    let expr = strip_outer_parens(expr.trim());
    for ops in [&["or"][..], &["and", "unless"][..]] {
        let parts = split_top_level(expr, |rest, prev| keyword_at(rest, prev, ops));
        if parts.len() > 1 {
            return parts.iter().flat_map(|p| value_parts(p)).collect();
        }
    }
    let parts = split_top_level(expr, |rest, _| comparison_at(rest));
    if parts.len() > 1 {
        return parts.iter().flat_map(|p| value_parts(p)).collect();
    }
    if expr.chars().any(|c| c.is_ascii_alphabetic()) {
        vec![expr.to_owned()]
    } else {
        Vec::new()
    }
}

/// Removes parentheses that enclose all of `expr`.
fn strip_outer_parens(mut expr: &str) -> &str {
    while expr.starts_with('(') && expr.ends_with(')') {
        let inner = &expr[1..expr.len() - 1];
        // The first '(' must close at the very end.
        let mut depth = 0i32;
        let mut closes_early = false;
        for (i, c) in expr.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 && i != expr.len() - 1 {
                        closes_early = true;
                        break;
                    }
                }
                _ => {}
            }
        }
        if closes_early {
            break;
        }
        expr = inner.trim();
    }
    expr
}

/// Splits `expr` at the operators `op_at` finds outside brackets and strings. `op_at`
/// gets the text from a position and the character before it, and returns the
/// operator's length there.
fn split_top_level(expr: &str, op_at: impl Fn(&str, Option<char>) -> Option<usize>) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut prev = None;
    let mut skip_to = 0;
    for (i, c) in expr.char_indices() {
        if i < skip_to {
            prev = Some(c);
            continue;
        }
        if let Some(q) = quote {
            if c == q && prev != Some('\\') {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' | '`' => quote = Some(c),
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => depth -= 1,
                _ if depth == 0 => {
                    if let Some(len) = op_at(&expr[i..], prev) {
                        parts.push(expr[start..i].trim().to_owned());
                        start = i + len;
                        skip_to = start;
                    }
                }
                _ => {}
            }
        }
        prev = Some(c);
    }
    parts.push(expr[start..].trim().to_owned());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A whole-word `and`/`or`/`unless` at the start of `rest`.
fn keyword_at(rest: &str, prev: Option<char>, ops: &[&str]) -> Option<usize> {
    if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    ops.iter().find_map(|op| {
        let after = rest.strip_prefix(op)?;
        let boundary = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        boundary.then_some(op.len())
    })
}

/// A comparison operator at the start of `rest`.
fn comparison_at(rest: &str) -> Option<usize> {
    ["==", "!=", ">=", "<=", ">", "<"]
        .iter()
        .find(|op| rest.starts_with(*op))
        .map(|op| op.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_comparisons_and_keeps_selectors_whole() {
        assert_eq!(
            value_parts(r#"sum by (cluster) (up{service="placement-center"}) < 2"#),
            vec![r#"sum by (cluster) (up{service="placement-center"})"#]
        );
        assert_eq!(
            value_parts(r#"up{service=~"a|b", pod!="x"} == 0"#),
            vec![r#"up{service=~"a|b", pod!="x"}"#]
        );
        assert_eq!(
            value_parts("process_resident_memory_bytes > 1.5 * 1024 * 1024"),
            vec!["process_resident_memory_bytes"]
        );
    }

    #[test]
    fn splits_set_operators_at_any_depth_of_parentheses() {
        let expr = "(\n a:ratio_rate1h > (14.4 * 0.001)\n and\n a:ratio_rate5m > (14.4 * 0.001)\n)\nor\n(b > 6 unless c)";
        assert_eq!(
            value_parts(expr),
            vec!["a:ratio_rate1h", "a:ratio_rate5m", "b", "c"]
        );
        // `and` inside a name or a label value is no operator.
        assert_eq!(
            value_parts(r#"brand_total{x="a and b"} > 1"#),
            vec![r#"brand_total{x="a and b"}"#]
        );
    }

    #[test]
    fn a_ratio_stays_one_part() {
        assert_eq!(
            value_parts("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.01"),
            vec!["sum(rate(a[5m])) / sum(rate(b[5m]))"]
        );
        assert_eq!(strip_outer_parens("(a) / (b)"), "(a) / (b)");
    }

    #[test]
    fn variables_become_all_and_a_short_interval() {
        assert_eq!(
            substitute_variables(
                r#"rate(x{pod=~"$pod", cluster=~"${cluster}"}[$__rate_interval])"#
            ),
            r#"rate(x{pod=~".*", cluster=~".*"}[1m])"#
        );
    }
}
