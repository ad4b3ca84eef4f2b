//! Registration in the placement center, against an in-process one-member placement
//! center: the node appears under `/cluster/nodes/journal/`, `/readyz` waits for it (a
//! placement center that is down at start is retried, not fatal), and shutdown — in
//! process, or SIGTERM to the real binary — removes it at once (deregistration, not lease
//! expiry: the TTL is far longer than the test waits).

use std::net::SocketAddr;
use std::path::Path;

use placement_center::{Node, PlacementConfig};
use placement_client::{kind_prefix, node_key, ClientConfig, PlacementClient};

use crate::harness::{
    eventually, free_port, http_get, loopback, standalone, standalone_text, wait_ready, InProcess,
    Process, STARTUP, WAIT,
};

/// A one-member placement center on `addr`, with fast elections.
async fn placement_center(addr: SocketAddr, dir: &Path) -> Node {
    let mut config = PlacementConfig {
        node_id: 1,
        listen: addr,
        metrics_listen: None,
        data_dir: dir.to_owned(),
        ..Default::default()
    };
    config.raft.election_timeout_min_ms = 200;
    config.raft.election_timeout_max_ms = 400;
    config.raft.heartbeat_interval_ms = 50;
    config.telemetry.identity_labels = false;
    let identity = common_metrics::Identity::from_lookup("placement-center", "test", |_| None);
    let listener = eventually(WAIT, "the placement center's port", || async {
        tokio::net::TcpListener::bind(addr).await.ok()
    })
    .await;
    Node::start_with_listeners(config, &identity, listener, None)
        .await
        .expect("placement center starts")
}

fn client(endpoints: &[SocketAddr]) -> PlacementClient {
    PlacementClient::new(ClientConfig::new(endpoints.iter().map(|a| a.to_string())))
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registers_once_the_placement_center_is_up_and_deregisters_on_shutdown() {
    let (data, pc_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pc_addr = loopback(free_port());
    let mut config = standalone(data.path(), &[]);
    config.placement.endpoints = vec![pc_addr.to_string()];
    config.placement.lease_ttl_secs = 60;
    let server = InProcess::spawn(config).await;

    // Nothing listens at the placement center's address yet: serving, but not ready.
    let (status, body) = eventually(WAIT, "/readyz to wait for the placement center", || async {
        http_get(server.metrics, "/readyz")
            .await
            .filter(|(_, body)| body.contains("placement center"))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    let mut api = server.client().await;
    api.list_shards(robustmq_proto::journal::ListShardsRequest {})
        .await
        .expect("the gRPC API serves meanwhile");

    let pc = placement_center(pc_addr, pc_dir.path()).await;
    wait_ready(server.metrics, STARTUP, String::new).await;
    let client = client(&[pc_addr]);
    let listed = client.range(kind_prefix("journal"), 0).await.unwrap();
    assert_eq!(listed.kvs.len(), 1);
    assert_eq!(listed.kvs[0].key, node_key("journal", 1).into_bytes());
    let members = client.watch_members("journal").await.unwrap();
    let me = members.current()[&1].clone();
    assert_eq!(me.info.kind, "journal");
    assert_eq!(me.info.grpc, server.grpc.to_string());
    assert_eq!(me.info.metrics, Some(server.metrics.to_string()));
    assert_eq!(me.info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(me.epoch, listed.kvs[0].create_revision as u64);

    server.stop().await;
    assert!(
        client.get(node_key("journal", 1)).await.unwrap().is_none(),
        "deregistered during shutdown, not left to expire"
    );
    eventually(WAIT, "the watcher to see the node leave", || async {
        members.current().is_empty().then_some(())
    })
    .await;
    pc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_registers_through_the_flag_and_deregisters_on_sigterm() {
    let (data, pc_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pc_addr = loopback(free_port());
    let pc = placement_center(pc_addr, pc_dir.path()).await;
    // A second, dead member: the comma-separated list is parsed and failed over.
    let endpoints = format!("{pc_addr},{}", loopback(free_port()));
    let (grpc, metrics) = (loopback(free_port()), loopback(free_port()));
    let text =
        standalone_text(grpc, metrics, data.path(), &[]) + "[placement]\nlease_ttl_secs = 60\n";
    let mut server =
        Process::spawn_with_args(&text, grpc, metrics, &["--placement-endpoints", &endpoints]);
    server.wait_ready().await;
    let client = client(&[pc_addr]);
    let members = client.watch_members("journal").await.unwrap();
    let me = members.current()[&1].clone();
    assert_eq!(
        (me.info.grpc, me.info.metrics),
        (grpc.to_string(), Some(metrics.to_string()))
    );

    server.terminate_cleanly().await;
    assert!(
        client.get(node_key("journal", 1)).await.unwrap().is_none(),
        "deregistered before exiting\n{}",
        server.output()
    );
    let output = server.output();
    assert!(
        output.contains("deregistered from the placement center"),
        "{output}"
    );
    eventually(WAIT, "the watcher to see the node leave", || async {
        members.current().is_empty().then_some(())
    })
    .await;
    pc.shutdown().await;
}
