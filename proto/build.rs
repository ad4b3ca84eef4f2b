//! Compiles every `protos/*.proto` with protox (a pure-Rust protobuf compiler, so no
//! `protoc` binary is needed) and generates prost messages and tonic clients/servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=protos");
    let mut files: Vec<PathBuf> = std::fs::read_dir("protos")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Ok(());
    }
    let fds = protox::compile(&files, ["protos"])?;
    // Forwarded MQTT payloads stay `Bytes` end to end: no copy from the publisher's read
    // buffer into the request, none from the request into the subscribers' deliveries.
    tonic_prost_build::configure()
        .bytes(".robustmq.broker")
        // The message inside a session-log record is large beside the other kinds.
        .boxed(".robustmq.broker.v1.SessionLogRecord.kind.enqueued")
        .boxed(".robustmq.broker.v1.SessionOpened.will")
        .boxed(".robustmq.broker.v1.SessionState.will")
        .compile_fds(fds)?;
    Ok(())
}
