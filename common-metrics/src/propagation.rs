//! W3C Trace Context (`traceparent`, `tracestate`) in and out of any key/value carrier:
//! MQTT 5 user properties, journal record headers, HTTP/2 (gRPC) headers.
//!
//! Extraction never fails: a missing or malformed `traceparent` yields an empty context,
//! so the caller starts a new root trace instead of rejecting the message. Extraction
//! starts from an *empty* context, not the current one, so a bad header can never make an
//! unrelated span that happens to be current the parent.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The W3C `traceparent` key.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` key.
pub const TRACESTATE: &str = "tracestate";

/// Extracts a remote context from `(key, value)` pairs; keys match case-insensitively
/// (HTTP header names are case-insensitive, MQTT property names by convention lower-case).
/// The first occurrence of a key wins.
pub fn extract_from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Context {
    let mut carrier = Carrier::default();
    for (key, value) in pairs {
        if key.eq_ignore_ascii_case(TRACEPARENT) {
            carrier.traceparent.get_or_insert(value);
        } else if key.eq_ignore_ascii_case(TRACESTATE) {
            carrier.tracestate.get_or_insert(value);
        }
    }
    if carrier.traceparent.is_none() {
        return Context::new();
    }
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

/// Extracts a remote context from HTTP (gRPC metadata) headers.
pub fn extract_from_headers(headers: &http::HeaderMap) -> Context {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let pairs = [
        (TRACEPARENT, value(TRACEPARENT)),
        (TRACESTATE, value(TRACESTATE)),
    ];
    extract_from_pairs(pairs.into_iter().filter_map(|(k, v)| Some((k, v?))))
}

/// Writes the span context of `cx` as `traceparent` (and a non-empty `tracestate`) through
/// `set`. Writes nothing when `cx` has no valid span context.
pub fn inject_context(cx: &Context, mut set: impl FnMut(&'static str, String)) {
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    let mut sink = Sink(|key: &str, value: String| {
        if key == TRACEPARENT {
            set(TRACEPARENT, value);
        } else if key == TRACESTATE && !value.is_empty() {
            // An empty `tracestate` is the same as none; skipping it saves a user
            // property or header on every message.
            set(TRACESTATE, value);
        }
    });
    TraceContextPropagator::new().inject_context(cx, &mut sink);
}

/// Writes the context of `cx` into HTTP (gRPC metadata) headers, replacing old values.
pub fn inject_into_headers(cx: &Context, headers: &mut http::HeaderMap) {
    inject_context(cx, |key, value| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(key, value);
        }
    });
}

/// The `traceparent` of the current OpenTelemetry context (the innermost entered span),
/// if there is one.
pub fn current_traceparent() -> Option<String> {
    let mut out = None;
    Context::map_current(|cx| {
        inject_context(cx, |key, value| {
            if key == TRACEPARENT {
                out = Some(value);
            }
        })
    });
    out
}

/// Borrowed `traceparent`/`tracestate` values, read by the propagator.
#[derive(Default)]
struct Carrier<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::with_capacity(2);
        if self.traceparent.is_some() {
            keys.push(TRACEPARENT);
        }
        if self.tracestate.is_some() {
            keys.push(TRACESTATE);
        }
        keys
    }
}

/// Adapts a closure to the propagator's `Injector`.
struct Sink<F>(F);

impl<F: FnMut(&str, String)> Injector for Sink<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_traceparent_and_tracestate() {
        let cx = extract_from_pairs([
            ("content-type", "x"),
            ("TraceParent", PARENT),
            ("tracestate", "vendor=abc"),
        ]);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.trace_state().header(), "vendor=abc");

        let mut out = Vec::new();
        inject_context(&cx, |k, v| out.push((k, v)));
        assert_eq!(
            out,
            vec![
                (TRACEPARENT, PARENT.to_string()),
                (TRACESTATE, "vendor=abc".to_string())
            ]
        );
    }

    #[test]
    fn malformed_or_missing_traceparent_is_empty_context() {
        for bad in [
            "",
            "garbage",
            "00-zz-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let cx = extract_from_pairs([(TRACEPARENT, bad)]);
            assert!(!cx.span().span_context().is_valid(), "{bad:?} accepted");
        }
        assert!(!extract_from_pairs([]).has_active_span());
        let mut out = Vec::new();
        inject_context(&Context::new(), |k, v| out.push((k, v)));
        assert!(out.is_empty());
    }

    #[test]
    fn empty_tracestate_is_not_injected() {
        let cx = extract_from_pairs([(TRACEPARENT, PARENT)]);
        let mut keys = Vec::new();
        inject_context(&cx, |k, _| keys.push(k));
        assert_eq!(keys, [TRACEPARENT]);
    }

    #[test]
    fn headers_round_trip() {
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, http::HeaderValue::from_static(PARENT));
        let cx = extract_from_headers(&headers);
        let mut out = http::HeaderMap::new();
        inject_into_headers(&cx, &mut out);
        assert_eq!(out.get(TRACEPARENT).unwrap(), PARENT);
        assert!(out.get(TRACESTATE).is_none());
    }

    #[test]
    fn current_traceparent_follows_attached_context() {
        assert_eq!(current_traceparent(), None);
        let _guard = extract_from_pairs([(TRACEPARENT, PARENT)]).attach();
        assert_eq!(current_traceparent().as_deref(), Some(PARENT));
    }
}
