//! The container image (deploy/docker): built from this build's binaries on the
//! offline-made base image (deploy/docker/build.sh --prebuilt), it runs a broker as a
//! non-root user that serves MQTT on its container address and drains on SIGTERM with
//! exit status 0. Skipped, saying why, when no Docker engine answers.

use cluster_tests::docker::{
    build_image, container_ip, docker, docker_ok, unavailable, wait_ready,
};
use cluster_tests::{unique, Client, WAIT};
use rumqttc::v5::mqttbytes::QoS;

/// What the test created, removed when it ends however it ends.
struct Cleanup {
    image: String,
    network: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_a_broker_as_non_root_and_drains_on_sigterm() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let id = unique("robustmq-test");
    let mut cleanup = Cleanup {
        image: format!("robustmq:{id}"),
        network: id.clone(),
        containers: Vec::new(),
    };
    build_image(&cleanup.image);
    assert_eq!(
        docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", &cleanup.image]),
        "10001:10001"
    );
    let version = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"org.opencontainers.image.version\"}}",
        &cleanup.image,
    ]);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    // A broker on the container's own address; anonymous clients allowed there.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "metrics_listen = \"0.0.0.0:9091\"\n\n[[listeners]]\nprotocol = \"tcp\"\n\
         bind = \"0.0.0.0:1883\"\nallow_anonymous = true\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    docker_ok(&["network", "create", &cleanup.network]);
    let mount = format!("{}:/etc/robustmq/broker.toml:ro", config.display());
    let container = docker_ok(&[
        "run",
        "-d",
        "--network",
        &cleanup.network,
        "--read-only",
        "--cap-drop",
        "ALL",
        "-v",
        &mount,
        &cleanup.image,
        "mqtt-broker",
        "--config",
        "/etc/robustmq/broker.toml",
    ]);
    cleanup.containers.push(container.clone());
    let ip = container_ip(&container);
    let metrics: std::net::SocketAddr = format!("{ip}:9091").parse().expect("container address");
    let mqtt: std::net::SocketAddr = format!("{ip}:1883").parse().expect("container address");
    wait_ready(metrics, WAIT, || docker_ok(&["logs", &container])).await;
    assert_eq!(docker_ok(&["exec", &container, "id", "-u"]), "10001");

    let mut sub = Client::connect(mqtt, &unique("image-sub")).await;
    sub.subscribe("image/t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(mqtt, &unique("image-pub")).await;
    publisher
        .publish(
            "image/t",
            QoS::AtLeastOnce,
            false,
            b"from the host".to_vec(),
        )
        .await;
    let got = sub.received().await;
    assert_eq!(&got.payload[..], b"from the host");

    // SIGTERM (docker stop) drains: exit status 0 well within the grace period.
    docker_ok(&["stop", "-t", "20", &container]);
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &container]),
        "0",
        "log:\n{}",
        docker_ok(&["logs", &container])
    );
    let log = docker_ok(&["logs", &container]);
    assert!(log.contains("broker stopped"), "{log}");
}
