//! JSON lines: one object per event, flat fields, `trace_id`/`span_id` inside spans.
//!
//! tracing-subscriber's own JSON formatter reads event fields with a private visitor, so
//! a redaction rule cannot hook into it; this formatter owns the whole line instead.
//! Shape of a line (keys in this order; event fields flattened to the top level, where
//! log shippers and Elasticsearch index them without extra parsing):
//!
//! ```json
//! {"timestamp":"2026-11-22T09:16:00.123456Z","level":"INFO","target":"mqtt_broker::session",
//!  "message":"client connected","client_id":"c1","span":{"name":"mqtt.connect","qos":1},
//!  "spans":[{"name":"mqtt.connect","qos":1}],"trace_id":"4bf9…","span_id":"00f0…"}
//! ```

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::redact::{is_secret_field, REDACTED};
use super::trace_ids;

/// Formats events as JSON lines.
#[derive(Debug, Default)]
pub struct JsonFormat {
    timer: SystemTime,
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(32);
        self.timer.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut fields = FieldList::default();
        event.record(&mut fields);
        let ids = trace_ids();

        writer.write_str("{\"timestamp\":")?;
        write_json(&mut writer, &Value::String(timestamp))?;
        write!(writer, ",\"level\":\"{}\",\"target\":", meta.level())?;
        let target = fields.log_target.as_deref().unwrap_or(meta.target());
        write_json(&mut writer, &Value::String(target.to_owned()))?;
        for (name, value) in &fields.values {
            if ids.is_some() && matches!(*name, "trace_id" | "span_id") {
                continue; // ours come from the span and are authoritative
            }
            writer.write_char(',')?;
            write_json(&mut writer, &Value::String((*name).to_owned()))?;
            writer.write_char(':')?;
            write_json(&mut writer, value)?;
        }

        if let Some(scope) = ctx.event_scope() {
            let mut spans = String::new();
            let mut leaf = String::new();
            for span in scope.from_root() {
                let ext = span.extensions();
                let stored = ext
                    .get::<FormattedFields<N>>()
                    .map(|f| f.fields.as_str())
                    .unwrap_or("");
                leaf.clear();
                leaf.push_str("{\"name\":");
                leaf.push_str(&Value::String(span.name().to_owned()).to_string());
                // The stored fields are a JSON object written by `JsonFields`; splice its
                // members in rather than parse it again on every event.
                let members = stored
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or("");
                if !members.is_empty() {
                    leaf.push(',');
                    leaf.push_str(members);
                }
                leaf.push('}');
                if !spans.is_empty() {
                    spans.push(',');
                }
                spans.push_str(&leaf);
            }
            write!(writer, ",\"span\":{leaf},\"spans\":[{spans}]")?;
        }

        if let Some((trace_id, span_id)) = ids {
            write!(
                writer,
                ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""
            )?;
        }
        writer.write_str("}\n")
    }
}

/// Formats span fields as a JSON object, with secrets redacted. Paired with
/// [`JsonFormat`], which splices the object into each line.
#[derive(Debug, Default)]
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut map = FieldMap::default();
        fields.record(&mut map);
        write_json(&mut writer, &Value::Object(map.0))
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // `span.record(..)` after creation: merge into the stored object. Rare, so the
        // parse/re-serialise cost is fine.
        let mut map = FieldMap(serde_json::from_str(&current.fields).unwrap_or_default());
        fields.record(&mut map);
        current.fields = Value::Object(map.0).to_string();
        Ok(())
    }
}

fn write_json(writer: &mut Writer<'_>, value: &Value) -> fmt::Result {
    // `Value`'s Display writes compact JSON with correct string escaping.
    write!(writer, "{value}")
}

/// Converts one field to JSON, applying the redaction rule.
fn json_value(field: &Field, value: Value) -> Value {
    if is_secret_field(field.name()) {
        Value::String(REDACTED.to_owned())
    } else {
        value
    }
}

/// Event fields in the order they were written.
#[derive(Default)]
struct FieldList {
    values: Vec<(&'static str, Value)>,
    /// Events bridged from the `log` crate carry their real target in `log.target`.
    log_target: Option<String>,
}

impl FieldList {
    fn push(&mut self, field: &Field, value: Value) {
        match field.name() {
            "log.target" => {
                if let Value::String(target) = value {
                    self.log_target = Some(target);
                }
            }
            name if name.starts_with("log.") => {}
            name => self.values.push((name, json_value(field, value))),
        }
    }
}

/// Span fields keyed by name (a later `record` replaces an earlier value).
#[derive(Default)]
struct FieldMap(Map<String, Value>);

impl FieldMap {
    fn push(&mut self, field: &Field, value: Value) {
        self.0
            .insert(field.name().to_owned(), json_value(field, value));
    }
}

/// Implements `Visit` for a type with `push(&Field, Value)`.
macro_rules! json_visitor {
    ($ty:ty) => {
        impl Visit for $ty {
            fn record_f64(&mut self, field: &Field, value: f64) {
                let v = serde_json::Number::from_f64(value)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(value.to_string()));
                self.push(field, v);
            }
            fn record_i64(&mut self, field: &Field, value: i64) {
                self.push(field, Value::from(value));
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.push(field, Value::from(value));
            }
            fn record_bool(&mut self, field: &Field, value: bool) {
                self.push(field, Value::from(value));
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.push(field, Value::from(value));
            }
            fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
                self.push(field, Value::String(value.to_string()));
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                self.push(field, Value::String(format!("{value:?}")));
            }
        }
    };
}

json_visitor!(FieldList);
json_visitor!(FieldMap);
