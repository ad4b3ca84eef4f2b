//! Prometheus' standard process metrics (`process_*`), read from `/proc/self` on each scrape.
//!
//! The names, units and help texts are the ones the Go and Java clients export, so stock
//! dashboards and alerts (CPU, memory, file descriptors, restarts via start time) work
//! unchanged. They are deliberately *not* under the `robustmq_` namespace.
//!
//! Values come from procfs text files rather than `getrusage`/`sysconf`, which would need
//! `unsafe` FFI (the workspace forbids it). Clock ticks are converted with `USER_HZ = 100`,
//! the value the kernel ABI fixes for procfs on every mainstream architecture (Prometheus'
//! own `procfs` library hard-codes it too). On other platforms the collector is empty.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Kernel clock ticks per second as reported in `/proc/<pid>/stat`.
const USER_HZ: f64 = 100.0;

/// Collects `process_*` metrics for the current process on every scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Start time in seconds since the epoch; fixed for the life of the process, so read
    /// once instead of on every scrape.
    start_time_seconds: Option<f64>,
}

impl ProcessCollector {
    /// Creates the collector and records the process start time.
    pub fn new() -> Self {
        ProcessCollector {
            start_time_seconds: read_start_time(),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// One scrape's worth of process figures; `None` where procfs could not be read.
#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    threads: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = read_snapshot();
        if let Some(v) = snap.cpu_seconds {
            let help = "Total user and system CPU time spent in seconds";
            let metric = ConstCounter::new(v);
            let e = encoder.encode_descriptor(
                "process_cpu",
                help,
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                snap.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                snap.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                snap.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                snap.max_fds,
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(Unit::Seconds),
                self.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                None,
                snap.threads,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?;
            metric.encode(e)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn read_snapshot() -> Snapshot {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let stat = stat.as_deref().and_then(parse_stat);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    Snapshot {
        cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        virtual_bytes: stat.as_ref().map(|s| s.vsize as f64),
        threads: stat.as_ref().map(|s| s.num_threads as f64),
        resident_bytes: status_kb(&status, "VmRSS:").map(|kb| kb * 1024.0),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as f64),
        max_fds: parse_max_open_files(&limits),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_snapshot() -> Snapshot {
    Snapshot::default()
}

#[cfg(target_os = "linux")]
fn read_start_time() -> Option<f64> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + stat.starttime as f64 / USER_HZ)
}

#[cfg(not(target_os = "linux"))]
fn read_start_time() -> Option<f64> {
    None
}

/// The fields of `/proc/self/stat` we use (see proc(5); numbering is 1-based there).
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    num_threads: u64,
    starttime: u64,
    vsize: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the *last* `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        num_threads: field(20)?,
        starttime: field(22)?,
        vsize: field(23)?,
    })
}

/// A `kB` value from `/proc/self/status`, e.g. `VmRSS:     1234 kB`.
fn status_kb(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit from the `Max open files` row of `/proc/self/limits`.
fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(f64::INFINITY),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let line = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 104857600 2048 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(
            stat,
            Stat {
                utime: 250,
                stime: 50,
                num_threads: 7,
                starttime: 12345,
                vsize: 104_857_600,
            }
        );
    }

    #[test]
    fn parses_status_and_limits() {
        let status = "Name:\tx\nVmSize:\t  2000 kB\nVmRSS:\t  1500 kB\nThreads:\t3\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(1500.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn encodes_standard_names_without_prefix() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector::new()));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "process_threads ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing in:\n{text}"
            );
        }
        assert!(text.contains("# TYPE process_cpu_seconds counter"));
    }
}
