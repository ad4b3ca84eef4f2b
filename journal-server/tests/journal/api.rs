//! The client API on an in-process standalone server: the happy paths, tailing that
//! wakes on append, shard administration, clear errors for bad input, group commit,
//! metrics, restart.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use robustmq_proto::journal as pb;
use tonic::Code;

use crate::harness::{http_get, record, standalone, InProcess, WAIT};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn append(
    c: &mut robustmq_proto::journal::journal_client::JournalClient<tonic::transport::Channel>,
    shard: &str,
    payloads: &[&str],
) -> pb::AppendResponse {
    let records = payloads
        .iter()
        .map(|p| record(p.as_bytes().to_vec()))
        .collect();
    c.append(pb::AppendRequest {
        shard: shard.into(),
        records,
    })
    .await
    .expect("append")
    .into_inner()
}

fn read_req(shard: &str, offset: i64) -> pb::ReadRequest {
    pb::ReadRequest {
        shard: shard.into(),
        offset,
        max_records: 0,
        max_bytes: 0,
    }
}

#[tokio::test]
async fn append_read_and_subscribe_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(standalone(dir.path(), &["orders"])).await;
    let mut c = server.client().await;

    let first = append(&mut c, "orders", &["a", "b"]).await;
    assert_eq!((first.base_offset, first.last_offset), (0, 1));
    let mut traced = record(b"c".to_vec());
    traced.key = b"key-c".to_vec();
    traced.timestamp_ms = 1_700_000_000_000;
    traced.headers = HashMap::from([("traceparent".to_string(), TRACEPARENT.to_string())]);
    let second = c
        .append(pb::AppendRequest {
            shard: "orders".into(),
            records: vec![traced],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.base_offset, 2);

    let read = c.read(read_req("orders", 0)).await.unwrap().into_inner();
    assert_eq!(read.records.len(), 3);
    assert_eq!(
        (read.next_offset, read.end_offset, read.start_offset),
        (3, 3, 0)
    );
    let c2 = &read.records[2];
    assert_eq!(
        (c2.offset, &c2.key[..], &c2.payload[..]),
        (2, &b"key-c"[..], &b"c"[..])
    );
    assert_eq!(c2.timestamp_ms, 1_700_000_000_000);
    assert_eq!(
        c2.headers["traceparent"], TRACEPARENT,
        "traceparent travels in the headers"
    );
    assert!(
        read.records[0].timestamp_ms > 0,
        "0 becomes the leader's clock"
    );

    // Subscribe from 1: the stored tail first, then a record appended afterwards.
    let mut stream = c
        .subscribe(pb::SubscribeRequest {
            shard: "orders".into(),
            offset: 1,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let got = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        got.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let mut writer = server.client().await;
    let late = tokio::spawn(async move { append(&mut writer, "orders", &["late"]).await });
    let got = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 1);
    assert_eq!(
        (got.records[0].offset, &got.records[0].payload[..]),
        (3, &b"late"[..])
    );
    assert_eq!(got.next_offset, 4);
    late.await.unwrap();

    // Lookup by time: the traced record has the oldest explicit timestamp.
    let found = c
        .lookup_offset(pb::LookupOffsetRequest {
            shard: "orders".into(),
            timestamp_ms: 1_700_000_000_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.offset, 0, "records 0 and 1 carry now, which is later");
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn shard_admin_create_list_info_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(standalone(dir.path(), &["configured"])).await;
    let mut c = server.client().await;

    let created = c
        .create_shard(pb::CreateShardRequest {
            shard: "made.at-runtime_1".into(),
            replication_factor: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(created.name, "made.at-runtime_1");
    assert_eq!(
        created
            .replicas
            .iter()
            .map(|r| r.node_id)
            .collect::<Vec<_>>(),
        vec![1]
    );
    append(&mut c, "made.at-runtime_1", &["x", "y", "z"]).await;

    let list = c
        .list_shards(pb::ListShardsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.shards.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["configured", "made.at-runtime_1"]);

    let info = c
        .shard_info(pb::ShardInfoRequest {
            shard: "made.at-runtime_1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(
        (info.start_offset, info.end_offset, info.log_end_offset),
        (0, 3, 3)
    );
    assert_eq!((info.segments, info.leader_id, info.node_id), (1, 1, 1));
    assert!(info.size_bytes > 0);
    assert!(info.leader_epoch >= 1);
    assert_eq!(info.leader_addr, server.grpc.to_string());
    assert!(info.replicas[0].in_sync);
    assert_eq!(info.replicas[0].log_end_offset, 3);

    let exists = c
        .create_shard(pb::CreateShardRequest {
            shard: "configured".into(),
            replication_factor: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(exists.code(), Code::AlreadyExists);

    c.delete_shard(pb::DeleteShardRequest {
        shard: "made.at-runtime_1".into(),
    })
    .await
    .unwrap();
    let gone = c
        .shard_info(pb::ShardInfoRequest {
            shard: "made.at-runtime_1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        !dir.path().join("shards/made.at-runtime_1").exists(),
        "files deleted"
    );
    // Recreated empty.
    c.create_shard(pb::CreateShardRequest {
        shard: "made.at-runtime_1".into(),
        replication_factor: 1,
    })
    .await
    .unwrap();
    let read = c
        .read(read_req("made.at-runtime_1", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(read.records.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = standalone(dir.path(), &["s"]);
    config.storage.max_record_bytes = 1024;
    let server = InProcess::start(config).await;
    let mut c = server.client().await;
    append(&mut c, "s", &["0", "1", "2"]).await;

    let err = c.read(read_req("s", -1)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("negative"), "{err:?}");

    let at_end = c.read(read_req("s", 3)).await.unwrap().into_inner();
    assert!(
        at_end.records.is_empty(),
        "reading at the end is empty, not an error"
    );
    assert_eq!(at_end.next_offset, 3);

    let err = c.read(read_req("s", 4)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("past its end 3"), "{err:?}");

    let err = c.read(read_req("nope", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("\"nope\""), "{err:?}");
    let err = c
        .append(pb::AppendRequest {
            shard: "nope".into(),
            records: vec![record(b"x".to_vec())],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .subscribe(pb::SubscribeRequest {
            shard: "nope".into(),
            offset: 0,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .subscribe(pb::SubscribeRequest {
            shard: "s".into(),
            offset: 10,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    let err = c
        .append(pb::AppendRequest {
            shard: "s".into(),
            records: vec![record(vec![7u8; 2000])],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("max_record_bytes"), "{err:?}");

    let err = c
        .append(pb::AppendRequest {
            shard: "s".into(),
            records: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut negative = record(b"x".to_vec());
    negative.timestamp_ms = -5;
    let err = c
        .append(pb::AppendRequest {
            shard: "s".into(),
            records: vec![negative],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    for bad in ["", "../etc", "a/b", ".hidden"] {
        let err = c
            .create_shard(pb::CreateShardRequest {
                shard: bad.into(),
                replication_factor: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    }
    let err = c
        .create_shard(pb::CreateShardRequest {
            shard: "three".into(),
            replication_factor: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "more replicas than nodes"
    );
    let err = c
        .lookup_offset(pb::LookupOffsetRequest {
            shard: "s".into(),
            timestamp_ms: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Nothing above changed the shard.
    let read = c.read(read_req("s", 0)).await.unwrap().into_inner();
    assert_eq!(read.records.len(), 3);
    server.stop().await;
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let samples = common_metrics::testing::parse_metrics(text);
    common_metrics::testing::find(&samples, name, labels)
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs_and_metrics_report_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(standalone(dir.path(), &["busy"])).await;
    let appends = 200;
    let mut tasks = Vec::new();
    for i in 0..appends {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            append(&mut c, "busy", &[&format!("r{i}")])
                .await
                .base_offset
        }));
    }
    let mut offsets = Vec::new();
    for t in tasks {
        offsets.push(t.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..appends as i64).collect::<Vec<_>>(),
        "every append got its own offset"
    );

    let (status, text) = http_get(server.metrics, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let fsyncs = metric(&text, "robustmq_journal_fsync_latency_seconds_count", &[]).unwrap();
    assert!(
        fsyncs >= 1.0 && fsyncs < appends as f64,
        "group commit: {fsyncs} fsyncs for {appends} appends"
    );
    assert_eq!(
        metric(&text, "robustmq_journal_records_appended_total", &[]),
        Some(appends as f64)
    );
    assert_eq!(
        metric(&text, "robustmq_journal_append_latency_seconds_count", &[]),
        Some(appends as f64)
    );
    assert_eq!(metric(&text, "robustmq_journal_shards", &[]), Some(1.0));
    assert_eq!(metric(&text, "robustmq_journal_segments", &[]), Some(1.0));
    assert_eq!(
        metric(&text, "robustmq_journal_leader_shards", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "robustmq_journal_under_replicated_shards", &[]),
        Some(0.0)
    );
    assert!(metric(&text, "robustmq_storage_disk_usage_bytes", &[]).unwrap() > 0.0);
    assert_eq!(
        metric(
            &text,
            "robustmq_grpc_server_handled_total",
            &[
                ("grpc_service", "robustmq.journal.v1.Journal"),
                ("grpc_method", "Append"),
                ("grpc_code", "OK")
            ]
        ),
        Some(appends as f64),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn restart_keeps_data_and_retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = standalone(dir.path(), &["r"]);
    config.storage.segment_bytes = 4096;
    config.storage.retention_bytes = 8192;
    config.storage.retention_check_interval_secs = 1;
    let server = InProcess::start(config.clone()).await;
    let mut c = server.client().await;
    for i in 0..100 {
        append(&mut c, "r", &[&format!("{i:0>100}")]).await;
    }
    server.stop().await;

    let server = InProcess::start(config).await;
    let mut c = server.client().await;
    let info = crate::harness::eventually(Duration::from_secs(10), "retention", || {
        let mut c = c.clone();
        async move {
            let info = c
                .shard_info(pb::ShardInfoRequest { shard: "r".into() })
                .await
                .ok()?
                .into_inner()
                .info?;
            (info.start_offset > 0).then_some(info)
        }
    })
    .await;
    assert_eq!(info.end_offset, 100, "all 100 records survived the restart");
    assert!(info.size_bytes >= 8192, "{info:?}");
    let read = c
        .read(read_req("r", info.start_offset))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.records[0].offset, info.start_offset);
    assert_eq!(read.records.last().unwrap().offset, 99);
    let err = c.read(read_req("r", 0)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::OutOfRange,
        "deleted by retention: {err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn corrupt_segment_tail_is_cut_at_restart_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let config = standalone(dir.path(), &["c"]);
    let server = InProcess::start(config.clone()).await;
    let mut c = server.client().await;
    for i in 0..10 {
        append(&mut c, "c", &[&format!("{i}-a"), &format!("{i}-b")]).await;
    }
    server.stop().await;

    // Bit rot in the last batch (records 18 and 19) and a torn half-batch after it.
    let segment = dir.path().join("shards/c/00000000000000000000.log");
    let mut data = std::fs::read(&segment).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff;
    data.extend_from_within(..60);
    std::fs::write(&segment, &data).unwrap();

    let server = InProcess::start(config).await;
    let mut c = server.client().await;
    let read = c.read(read_req("c", 0)).await.unwrap().into_inner();
    let payloads: Vec<_> = read
        .records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect();
    assert_eq!(
        payloads.len(),
        18,
        "everything before the corrupt batch is kept: {payloads:?}"
    );
    assert_eq!(payloads[17], "8-b");
    let next = append(&mut c, "c", &["after"]).await;
    assert_eq!(
        next.base_offset, 18,
        "appends continue where the valid log ends"
    );
    let (_, text) = http_get(server.metrics, "/metrics").await.unwrap();
    let cut = metric(
        &text,
        "robustmq_journal_recovery_truncated_bytes_total",
        &[],
    )
    .unwrap();
    assert!(cut > 60.0, "{cut}");
    server.stop().await;
}
