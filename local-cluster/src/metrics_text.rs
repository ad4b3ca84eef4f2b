//! Reading the few numbers the status line needs out of `/metrics` text (Prometheus 0.0.4
//! or OpenMetrics): the sum of every sample of one name, whatever its labels.

/// The broker gauge of open MQTT connections.
pub const CONNECTIONS_ACTIVE: &str = "robustmq_connections_active";
/// The broker counter of PUBLISH messages received from clients (labelled by QoS).
pub const MESSAGES_RECEIVED: &str = "robustmq_messages_received_total";
/// The broker counter of messages delivered to subscribers (labelled by QoS).
pub const MESSAGES_DELIVERED: &str = "robustmq_messages_delivered_total";

/// The sum of all samples named exactly `name` (any labels), or `None` if there is none.
pub fn sum_samples(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(value) = sample_value(line, name) {
            found = true;
            sum += value;
        }
    }
    found.then_some(sum)
}

/// The value of `line` if it is a sample of `name`.
fn sample_value(line: &str, name: &str) -> Option<f64> {
    let rest = line.strip_prefix(name)?;
    let rest = match rest.as_bytes().first()? {
        b'{' => &rest[labels_end(rest)?..],
        b' ' | b'\t' => rest,
        _ => return None, // a longer name that starts with `name`
    };
    // The value is the first field; a timestamp or an OpenMetrics exemplar may follow.
    match rest.split_whitespace().next()? {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        value => value.parse().ok(),
    }
}

/// The index just past the `}` closing the label set that starts `text`, skipping
/// quoted values (which may contain `}` and escaped quotes).
fn labels_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP robustmq_messages_received_total PUBLISH received
# TYPE robustmq_messages_received_total counter
robustmq_messages_received_total{service="mqtt-broker",pod="mqtt-broker-1",qos="0"} 10
robustmq_messages_received_total{service="mqtt-broker",pod="a } \" b",qos="1"} 5 1700000000000
robustmq_messages_received_total_extra 100
robustmq_connections_active{service="mqtt-broker"} 3
robustmq_connections_active_peak 7
robustmq_message_latency_seconds_bucket{le="+Inf"} 4 # {trace_id="ab"} 0.1 1.7e9
robustmq_up 1
"#;

    #[test]
    fn sums_every_label_set_of_one_name() {
        assert_eq!(sum_samples(TEXT, MESSAGES_RECEIVED), Some(15.0));
        assert_eq!(sum_samples(TEXT, CONNECTIONS_ACTIVE), Some(3.0));
        assert_eq!(sum_samples(TEXT, "robustmq_up"), Some(1.0));
    }

    #[test]
    fn exemplars_and_missing_metrics() {
        assert_eq!(
            sum_samples(TEXT, "robustmq_message_latency_seconds_bucket"),
            Some(4.0)
        );
        assert_eq!(sum_samples(TEXT, MESSAGES_DELIVERED), None);
        assert_eq!(sum_samples("", "x"), None);
    }

    #[test]
    fn broken_lines_are_skipped() {
        let text = "x{a=\"unterminated 1\nx not-a-number\nx 2\n";
        assert_eq!(sum_samples(text, "x"), Some(2.0));
    }
}
