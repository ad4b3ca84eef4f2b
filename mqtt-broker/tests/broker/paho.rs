//! Python paho-mqtt 2.x scripts (`tests/broker/paho/*.py`) for what rumqttc cannot
//! express or where a second, independent client implementation is worth having. Each
//! test starts a broker and runs `python3 SCRIPT HOST PORT`; the script prints what it
//! checked and exits non-zero on the first failure, and its output is attached to the
//! failure. A missing python3 or paho-mqtt FAILS the test (CI installs them).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

async fn python(args: &[&str]) -> std::io::Result<std::process::Output> {
    let child = tokio::process::Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out,
        Err(_) => panic!("python3 {args:?} did not finish within {SCRIPT_TIMEOUT:?}"),
    }
}

fn require_paho_hint(detail: &str) -> String {
    format!(
        "these tests need python3 with paho-mqtt 2.x: run `pip install paho-mqtt` \
         (CI installs it). {detail}"
    )
}

/// Runs one script against a fresh broker and fails with its output if it fails.
async fn run(script: &str) {
    match python(&[
        "-c",
        "import paho.mqtt; assert paho.mqtt.__version__.startswith('2.')",
    ])
    .await
    {
        Err(e) => panic!(
            "{}",
            require_paho_hint(&format!("python3 cannot be started: {e}"))
        ),
        Ok(out) if !out.status.success() => panic!(
            "{}",
            require_paho_hint(&format!(
                "import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        ),
        Ok(_) => {}
    }
    let b = TestBroker::start().await;
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "broker",
        "paho",
        script,
    ]
    .iter()
    .collect();
    let addr = b.tcp();
    // -B: no __pycache__ beside the scripts.
    let out = python(&[
        "-B",
        path.to_str().unwrap(),
        &addr.ip().to_string(),
        &addr.port().to_string(),
    ])
    .await
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("ok: "),
        "{script} checked nothing:\n{stdout}"
    );
    b.assert_healthy().await;
}

#[tokio::test]
async fn paho_v5_subscribe_options() {
    run("subscribe_options.py").await;
}

#[tokio::test]
async fn paho_v5_topic_aliases() {
    run("topic_alias.py").await;
}

#[tokio::test]
async fn paho_v5_request_response_and_properties() {
    run("request_response.py").await;
}

#[tokio::test]
async fn paho_v5_session_expiry_and_will_delay() {
    run("session_and_will.py").await;
}

#[tokio::test]
async fn paho_v5_subscription_identifiers() {
    run("subscription_ids.py").await;
}

#[tokio::test]
async fn paho_v311_basics() {
    run("v311.py").await;
}
