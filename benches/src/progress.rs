//! The live progress line: clients connected, messages sent/acknowledged/received with
//! their rates over the last interval. Hidden when stdout is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::Live;

/// A running progress display; [`Progress::finish`] removes it.
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts updating every 250 ms from `live`.
    pub fn start(live: Arc<Live>, enabled: bool, label: String, clients: u64) -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if enabled && std::io::stdout().is_terminal() {
                ProgressDrawTarget::stdout()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(label);
        if bar.is_hidden() {
            return Self { bar, ticker: None };
        }
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let period = Duration::from_millis(250);
            let mut tick = tokio::time::interval(period);
            let mut last = (0u64, 0u64);
            loop {
                tick.tick().await;
                let sent = Live::get(&live.sent);
                let received = Live::get(&live.received);
                let per_s = |now: u64, before: u64| (now - before) as f64 / period.as_secs_f64();
                b.set_message(format!(
                    "clients {}/{clients} | sent {sent} ({:.0}/s) acked {} | received {received} ({:.0}/s) | errors {}",
                    Live::get(&live.connected),
                    per_s(sent, last.0),
                    Live::get(&live.acked),
                    per_s(received, last.1),
                    Live::get(&live.errors),
                ));
                b.tick();
                last = (sent, received);
            }
        });
        Self {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Stops and clears the display.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
