//! Local append throughput with fsync on: the shard writer (group commit) and its log,
//! no network. 64 B and 1 KiB records, 1 / 16 / 128 concurrent appenders (one record per
//! append), so the effect of group commit shows: one appender pays one fsync per record,
//! many share each fsync. Plus the physical reference: the raw disk's rate of
//! `write` + `fdatasync` in a loop, on the same file system.
//!
//! Throughput is in records (elements) per second; MB/s = records/s × record size.
//! Run: `CARGO_TARGET_DIR=/work/target-js cargo bench -p journal-server --bench append`

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use journal_server::config::StorageConfig;
use journal_server::group_commit::Writer;
use journal_server::log::Log;
use journal_server::metrics::StorageMetrics;
use journal_server::NewRecord;

const SIZES: [usize; 2] = [64, 1024];
const CONCURRENCY: [usize; 3] = [1, 16, 128];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A payload of `size` bytes encoded (record overhead included), so sizes are on-disk.
fn record(size: usize) -> NewRecord {
    let overhead = NewRecord::default().encoded_len();
    NewRecord::with_payload(vec![0x5a; size.saturating_sub(overhead)])
}

fn local_append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("local_append_fsync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for size in SIZES {
        for concurrency in CONCURRENCY {
            let dir = tempfile::tempdir_in(
                std::env::var("BENCH_DIR")
                    .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
            )
            .unwrap();
            let config = StorageConfig::default();
            let (log, _) = Log::open(dir.path(), &config).unwrap();
            let fence = Arc::new(AtomicU64::new(0));
            let (writer, _task) = rt.block_on(async {
                let w = Writer::spawn(Arc::new(log), &config, fence, StorageMetrics::default());
                w.0.begin_epoch(1).await.unwrap();
                w
            });
            group.throughput(Throughput::Elements(1));
            let id = BenchmarkId::new(format!("{size}B"), format!("{concurrency}_appenders"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..concurrency)
                            .map(|t| {
                                let writer = writer.clone();
                                let n = iters as usize / concurrency
                                    + usize::from(t < iters as usize % concurrency);
                                tokio::spawn(async move {
                                    for _ in 0..n {
                                        writer.append(1, vec![record(size)]).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        start.elapsed()
                    })
                })
            });
            drop(writer);
        }
    }
    group.finish();
}

/// The disk's own rate: append `size` bytes and `fdatasync`, in a loop.
fn raw_fdatasync(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_write_fdatasync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for size in SIZES {
        let dir = tempfile::tempdir_in(
            std::env::var("BENCH_DIR")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        )
        .unwrap();
        let mut file = std::fs::File::create(dir.path().join("raw")).unwrap();
        let buf = vec![0x5a; size];
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new(format!("{size}B"), "1_writer"), |b| {
            b.iter(|| {
                file.write_all(&buf).unwrap();
                file.sync_data().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, raw_fdatasync, local_append);
criterion_main!(benches);
