//! `ordeal-node`: run one node of the ordering service, or benchmark a
//! local 3-node cluster.

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::bench::BenchArgs;
use node::config::{NodeConfig, RunArgs};
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: per-thread free lists without glibc's
/// consolidation of fast bins whenever a large (block-sized) buffer is
/// freed; the node allocates per request and per block on many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An ordering service node modelled on Hyperledger Fabric's etcdraft
/// orderer (docs/node-api.md).
#[derive(Debug, Parser)]
#[command(name = "ordeal-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node.
    Run(Box<RunArgs>),
    /// Start a local 3-node cluster with fsync on and measure it; prints one
    /// JSON line last.
    Bench(BenchArgs),
    /// List the crash points, one name a line (docs/crash-points.md).
    CrashPoints,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,raft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ordeal-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    match cli.command {
        Command::Run(args) => {
            let config = NodeConfig::from_args(*args)?;
            let id = config.args.id;
            runtime
                .block_on(node::launch::run(config))
                .with_context(|| format!("node {id}"))
        }
        Command::CrashPoints => {
            for point in node::crash_points::Point::ALL {
                println!("{}", point.name());
            }
            Ok(())
        }
        Command::Bench(args) => {
            let exe = std::env::current_exe().context("locating ordeal-node")?;
            let report = runtime.block_on(node::bench::run(&exe, args))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}
