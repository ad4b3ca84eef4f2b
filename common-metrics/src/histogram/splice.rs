//! Exemplars into the text of a scrape: prometheus-client builds an `Exemplar` only
//! inside its own histogram types, so a [`LatencyHistogram`]'s exemplars are added by the
//! writer the registry is encoded into. The histogram's `encode` hands its exemplars over
//! ([`with_exemplars`]) for the length of its one `encode_histogram` call, and the
//! writer appends each to its bucket's line. Encoded into any other writer, nothing is
//! handed over and the text has the counts without the exemplars.
//!
//! [`LatencyHistogram`]: super::LatencyHistogram

use std::cell::RefCell;

/// Runs `encode` (one histogram's `encode_histogram`) with the exemplars `collect`
/// renders per bucket handed to the [`ExemplarWriter`] encoding on this thread, if any;
/// `collect` is not called otherwise.
pub(super) fn with_exemplars<R>(
    collect: impl FnOnce() -> Vec<Option<String>>,
    encode: impl FnOnce() -> R,
) -> R {
    let offered = SPLICE.with_borrow_mut(|splice| {
        let Some(splice) = splice.as_mut() else {
            return false;
        };
        splice.pending = collect();
        splice.bucket = 0;
        if splice.pending.iter().all(Option::is_none) {
            splice.pending.clear();
        }
        !splice.pending.is_empty()
    });
    let result = encode();
    if offered {
        SPLICE.with_borrow_mut(|splice| {
            if let Some(splice) = splice.as_mut() {
                splice.pending.clear();
            }
        });
    }
    result
}

/// What [`ExemplarWriter`] splices into the histogram being encoded.
#[derive(Debug, Default)]
struct Splice {
    /// The rendered exemplar of each bucket of the histogram being encoded (empty when
    /// none is being encoded).
    pending: Vec<Option<String>>,
    /// The bucket line the writer is on.
    bucket: usize,
}

thread_local! {
    /// Set while an [`ExemplarWriter`] encodes on this thread.
    static SPLICE: RefCell<Option<Splice>> = const { RefCell::new(None) };
}

/// A `fmt::Write` that adds each [`LatencyHistogram`]'s exemplars to its bucket lines
/// while a registry is encoded into it (see the module documentation).
///
/// [`LatencyHistogram`]: super::LatencyHistogram
#[derive(Debug)]
pub struct ExemplarWriter {
    out: String,
    /// Where the line being written starts in `out`.
    line_start: usize,
}

impl ExemplarWriter {
    /// Runs `encode` with a writer that splices exemplars, and returns the text.
    pub fn encode(
        capacity: usize,
        encode: impl FnOnce(&mut ExemplarWriter) -> std::fmt::Result,
    ) -> Result<String, std::fmt::Error> {
        let mut writer = ExemplarWriter {
            out: String::with_capacity(capacity),
            line_start: 0,
        };
        let outer = SPLICE.replace(Some(Splice::default()));
        let result = encode(&mut writer);
        SPLICE.set(outer);
        result.map(|()| writer.out)
    }

    /// Ends the current line, first appending the pending exemplar if the line is a
    /// bucket of the histogram being encoded.
    fn end_line(&mut self) {
        let line = &self.out[self.line_start..];
        let exemplar = SPLICE.with_borrow_mut(|splice| {
            let splice = splice.as_mut().filter(|s| !s.pending.is_empty())?;
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            if !line[..name_end].ends_with("_bucket") {
                return None;
            }
            let exemplar = splice.pending.get_mut(splice.bucket)?.take();
            splice.bucket += 1;
            exemplar
        });
        if let Some(exemplar) = exemplar {
            self.out.push_str(&exemplar);
        }
        self.out.push('\n');
        self.line_start = self.out.len();
    }
}

impl std::fmt::Write for ExemplarWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(newline) = rest.find('\n') {
            self.out.push_str(&rest[..newline]);
            self.end_line();
            rest = &rest[newline + 1..];
        }
        self.out.push_str(rest);
        Ok(())
    }
}
