//! The `mqtt-bench` binary: parse flags, run, print, exit non-zero on failure.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mqtt_bench::cli::{Cli, Command, RunArgs};
use mqtt_bench::client::tls::TlsSettings;
use mqtt_bench::compare;
use mqtt_bench::{Kind, RunOptions};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ServeRumqttd(args) = &cli.command {
        return exit(compare::rumqttd::serve(args).map(|()| true));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    exit(runtime.block_on(run(cli.command)))
}

fn exit(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mqtt-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` when the run itself failed (loss, errors).
async fn run(command: Command) -> anyhow::Result<bool> {
    let (kind, args) = match command {
        Command::Conn(a) => (Kind::Conn, a),
        Command::Pub(a) => (Kind::Pub, a),
        Command::Sub(a) => (Kind::Sub, a),
        Command::FanIn(a) => (Kind::FanIn, a),
        Command::FanOut(a) => (Kind::FanOut, a),
        Command::P2p(a) => (Kind::P2p, a),
        Command::Compare(a) => return run_compare(a).await,
        Command::ServeRumqttd(_) => unreachable!("handled before the runtime starts"),
    };
    run_scenario(kind, args).await
}

async fn run_scenario(kind: Kind, args: RunArgs) -> anyhow::Result<bool> {
    let scenario = args.scenario(kind).map_err(anyhow::Error::msg)?;
    // Every client is a socket: raise the soft open-file limit, fail clearly if too low.
    compare::memory::ensure_fd_limit(scenario.publishers + scenario.subscribers)?;
    let tls = if args.tls {
        let host = args.addr[0]
            .rsplit_once(':')
            .map_or(args.addr[0].as_str(), |(h, _)| h);
        let name = args.server_name.as_deref().unwrap_or(host);
        Some(TlsSettings::new(args.ca.as_deref(), args.insecure, name)?)
    } else {
        None
    };
    let opts = RunOptions {
        client: args.client,
        tls,
        progress: !args.no_progress,
        target: args.addr.join(","),
    };
    let report = mqtt_bench::run(&scenario, &opts).await?;
    print!("{}", report.table(std::io::stdout().is_terminal()));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, mqtt_bench::plot::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(!report.failed())
}

async fn run_compare(args: compare::CompareArgs) -> anyhow::Result<bool> {
    let cmp = compare::run(&args).await?;
    let table = compare::table::markdown(&cmp);
    println!("\n{table}");
    if let Some(path) = &args.json {
        let value = serde_json::json!({ "comparison": &cmp, "table": compare::table::rows(&cmp) });
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = cmp
        .runs
        .values()
        .flat_map(|b| b.values())
        .flatten()
        .any(|r| r.failed());
    Ok(!failed)
}
