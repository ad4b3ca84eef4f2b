//! What the container tests share: the `docker` command, whether an engine answers, and
//! building the image from this build's binaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::binary;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_owned()
}

/// Runs `program args`; panics only when it cannot be started.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// `docker args`, whatever its outcome.
pub fn docker(args: &[&str]) -> Output {
    run("docker", args)
}

/// `docker args`, which must succeed; its stdout, trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    ok("docker", docker(args), args)
}

/// The trimmed stdout of `out`, which must be a success.
pub fn ok(program: &str, out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Why containers cannot be tested here, if they cannot: no engine, or no base image
/// and no way to make one.
pub fn unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Err(e) => Some(format!("no docker command ({e})")),
        Ok(out) if !out.status.success() => Some(format!(
            "no Docker engine answers: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            // Without the base image, base-image.sh needs root and debootstrap.
            let base = docker(&["image", "inspect", "debian:bookworm-slim"]);
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
            let debootstrap = local_cluster::binaries::find_on_path("debootstrap").is_some()
                || Path::new("/usr/sbin/debootstrap").exists();
            let can_make = root && debootstrap;
            (!(base.status.success() || can_make)).then(|| {
                "no debian:bookworm-slim image, and deploy/docker/base-image.sh needs root \
                 and debootstrap to make it"
                    .to_owned()
            })
        }
    }
}

/// Builds the image as `tag` with deploy/docker/build.sh from the debug binaries this
/// build made (the Dockerfile's runtime stage, the image users get minus the build stage).
pub fn build_image(tag: &str) {
    let bin_dir = binary("mqtt-broker").parent().unwrap().to_owned();
    let built = Command::new(repo_root().join("deploy/docker/build.sh"))
        .args(["--tag", tag, "--prebuilt"])
        .arg(&bin_dir)
        .output()
        .expect("build.sh runs");
    println!("{}", ok("build.sh", built, &[tag]));
}

/// The address of `container` on its (one) network.
pub fn container_ip(container: &str) -> String {
    docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
}

/// Whether `GET /readyz` at `metrics` answers 200.
pub async fn ready(metrics: SocketAddr) -> bool {
    local_cluster::probe::http_get(metrics, "/readyz")
        .await
        .is_ok_and(|a| a.status == 200)
}

/// Waits up to `within` for `/readyz` at `metrics` to answer 200; panics with `log()`.
pub async fn wait_ready(metrics: SocketAddr, within: Duration, log: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + within;
    while !ready(metrics).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{metrics} never got ready; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
