//! The human format for a terminal: one line per event, coloured level, span path, fields
//! as `key=value`, secrets redacted, and `trace_id`/`span_id` at the end inside spans.
//!
//! ```text
//! 2026-11-22T09:16:00.123456Z  INFO mqtt.connect{qos=1}: mqtt_broker::session: client connected client_id="c1" trace_id=4bf9… span_id=00f0…
//! ```

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::redact::{is_secret_field, REDACTED};
use super::trace_ids;

/// Formats events as single human-readable lines.
#[derive(Debug, Default)]
pub struct HumanFormat {
    timer: SystemTime,
}

impl<S, N> FormatEvent<S, N> for HumanFormat
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
        let ansi = writer.has_ansi_escapes();
        let (dim, reset) = if ansi {
            ("\x1b[2m", "\x1b[0m")
        } else {
            ("", "")
        };
        writer.write_str(dim)?;
        self.timer.format_time(&mut writer)?;
        write!(
            writer,
            "{reset} {} ",
            level(*event.metadata().level(), ansi)
        )?;

        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        let bridged = (event.metadata().target() == "log")
            .then(|| log_target(event))
            .flatten();
        let target = bridged.as_deref().unwrap_or(event.metadata().target());
        write!(writer, "{dim}{target}:{reset} ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        if let Some((trace_id, span_id)) = trace_ids() {
            write!(writer, " {dim}trace_id={trace_id} span_id={span_id}{reset}")?;
        }
        writeln!(writer)
    }
}

/// The real target of an event bridged from the `log` crate (`tracing-log` reports them
/// all under target `log`, with the original in a `log.target` field).
fn log_target(event: &Event<'_>) -> Option<String> {
    struct Target(Option<String>);
    impl Visit for Target {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "log.target" {
                self.0 = Some(value.to_owned());
            }
        }
        fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
    }
    let mut target = Target(None);
    event.record(&mut target);
    target.0
}

/// The level, padded to five characters and coloured on a terminal.
fn level(level: Level, ansi: bool) -> String {
    let color = match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    };
    if ansi {
        format!("{color}{level:>5}\x1b[0m")
    } else {
        format!("{level:>5}")
    }
}

/// Formats fields as `message key=value …`, secrets redacted.
#[derive(Debug, Default)]
pub struct HumanFields;

impl<'w> FormatFields<'w> for HumanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = HumanVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct HumanVisitor<'w> {
    writer: Writer<'w>,
    /// No separator before the first field.
    first: bool,
    /// `Visit` methods cannot fail, so the first write error is kept here.
    result: fmt::Result,
}

impl Visit for HumanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = match field.name() {
            "message" => write!(self.writer, "{sep}{value:?}"),
            name if is_secret_field(name) => write!(self.writer, "{sep}{name}={REDACTED}"),
            name => write!(self.writer, "{sep}{name}={value:?}"),
        };
    }
}
