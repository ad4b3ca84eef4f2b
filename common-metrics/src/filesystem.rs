//! `robustmq_storage_filesystem_{avail,size}_bytes`: free and total space of the
//! filesystem holding a service's data directory, read with `statvfs(2)` on each scrape.
//!
//! `robustmq_storage_disk_usage_bytes` says how much the service wrote; these two say how
//! much room is left, which is what a "disk filling up" alert needs
//! (`predict_linear(robustmq_storage_filesystem_avail_bytes[6h], 86400) < 0`). Under
//! Kubernetes the kubelet's `kubelet_volume_stats_*` say the same for a PVC; these work
//! everywhere, the local cluster included.

use std::path::PathBuf;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// Reports the filesystem holding `path` on every scrape; nothing when it cannot be read.
#[derive(Debug)]
pub struct FilesystemCollector {
    path: PathBuf,
}

impl FilesystemCollector {
    /// Registers the collector for `path` in `registry` (the service's `robustmq_`
    /// registry).
    pub fn register(registry: &mut Registry, path: impl Into<PathBuf>) {
        registry.register_collector(Box::new(FilesystemCollector { path: path.into() }));
    }
}

/// Free (for unprivileged users) and total bytes of the filesystem holding `path`.
pub fn space(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    let block = st.f_frsize.max(1);
    Ok((
        st.f_bavail.saturating_mul(block),
        st.f_blocks.saturating_mul(block),
    ))
}

impl Collector for FilesystemCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok((avail, size)) = space(&self.path) else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "storage_filesystem_avail",
                "Bytes free for the service on the filesystem holding its data directory",
                avail,
            ),
            (
                "storage_filesystem_size",
                "Size of the filesystem holding the data directory",
                size,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            let e =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
            gauge.encode(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_data_directory_filesystem() {
        let dir = std::env::temp_dir();
        let mut registry = Registry::with_prefix("robustmq");
        FilesystemCollector::register(&mut registry, &dir);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        let avail = value("robustmq_storage_filesystem_avail_bytes ");
        let size = value("robustmq_storage_filesystem_size_bytes ");
        assert!(size > 0.0 && avail <= size, "{avail} of {size}\n{text}");
    }

    #[test]
    fn an_unreadable_path_exports_nothing() {
        let mut registry = Registry::default();
        FilesystemCollector::register(&mut registry, "/nonexistent/robustmq/data");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("storage_filesystem"), "{text}");
    }
}
