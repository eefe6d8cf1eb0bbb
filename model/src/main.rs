//! `model`: check the Raft model exhaustively, or browse it in stateright's Explorer.

mod replay_bench;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use model::{check, Bounds, Bug, CheckOptions, CheckReport, Network, RaftModel, Strategy, Verdict};
use stateright::Model;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "model",
    about = "A stateright model of Raft election and log matching"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search the state space and report every property; exit 1 on a violation or a
    /// sometimes-property without an example.
    Check(CheckArgs),
    /// Serve stateright's Explorer to walk through the model in a browser.
    Explore(ExploreArgs),
    /// Check real nodes' Raft traces (docs/trace.md) against the model's rules; exit 0 when
    /// valid, 1 on an anomaly, 3 when a trace cannot be read.
    Replay(ReplayArgs),
    /// Measure the replay on a synthetic three-node run of --indices entries (written to a
    /// temporary directory, then removed): prints one JSON line with the trace bytes, events,
    /// time and peak resident memory.
    ReplayBench(ReplayBenchArgs),
}

#[derive(Args)]
struct ReplayBenchArgs {
    /// Entries the synthetic run replicates (about 3 KB of trace each).
    #[arg(long, default_value_t = 100_000)]
    indices: u64,
}

#[derive(Args)]
struct ReplayArgs {
    /// One trace file per node (`nodes/<n>/trace.jsonl` in a run's store).
    #[arg(required = true)]
    traces: Vec<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// A bound's help line, with the default taken from [`Bounds::default`] so it cannot drift.
fn bound_help(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}; with --bug, the least the bug needs]")
}

/// A help line for a setting that `--bug` leaves at its default.
fn plain_help(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}; also with --bug]")
}

#[derive(Args)]
struct ModelArgs {
    #[arg(long, help = plain_help("Number of servers", Bounds::default().servers))]
    servers: Option<u8>,
    #[arg(long, help = bound_help("Highest term any server reaches", Bounds::default().max_term))]
    max_term: Option<u8>,
    #[arg(long, help = bound_help("Client values accepted over the run", Bounds::default().max_log))]
    max_log: Option<u8>,
    #[arg(long, help = bound_help("Crash-and-restart events over the run", Bounds::default().max_crashes))]
    max_crashes: Option<u8>,
    #[arg(long, help = bound_help("Membership changes (one server added or removed) over the run", Bounds::default().max_changes))]
    max_changes: Option<u8>,
    #[arg(long, help = plain_help("lossy, ordered or duplicating", Bounds::default().network))]
    network: Option<String>,
    /// Break one rule: vote-any-log, commit-old-term, forget-vote, no-truncate or two-changes.
    #[arg(long)]
    bug: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Depth-first search instead of breadth-first.
    #[arg(long, conflicts_with = "simulation")]
    dfs: bool,
    /// Random walks instead of an exhaustive search (needs --seed).
    #[arg(long, requires = "seed")]
    simulation: bool,
    /// Seed for --simulation; printed with the results.
    #[arg(long)]
    seed: Option<u64>,
    /// Checker threads; with more than one, BFS paths may not be shortest.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop the search after this many seconds (verdicts then become unknown)
    /// [default: none; 10 for --simulation].
    #[arg(long)]
    time_limit_s: Option<u64>,
    /// Explore every renaming of servers separately (no symmetry reduction).
    #[arg(long)]
    no_symmetry: bool,
    /// Stop at the first violation (undecided verdicts become unknown).
    #[arg(long)]
    first_violation: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to serve Explorer on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

impl ModelArgs {
    /// Flags into a validated model; unset bounds default, raised to what `--bug` needs.
    fn plan(&self) -> Result<RaftModel> {
        let bug: Option<Bug> = self.bug.as_deref().map(str::parse).transpose()?;
        let network: Option<Network> = self.network.as_deref().map(str::parse).transpose()?;
        let base = Bounds::for_bug(bug);
        let bounds = Bounds {
            servers: self.servers.unwrap_or(base.servers),
            max_term: self.max_term.unwrap_or(base.max_term),
            max_log: self.max_log.unwrap_or(base.max_log),
            max_crashes: self.max_crashes.unwrap_or(base.max_crashes),
            max_changes: self.max_changes.unwrap_or(base.max_changes),
            network: network.unwrap_or(base.network),
        }
        .validate()?;
        Ok(RaftModel::new(bounds).with_bug(bug))
    }
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Check(args) => run_check(&args),
        Command::Explore(args) => run_explore(&args),
        Command::Replay(args) => run_replay(&args),
        Command::ReplayBench(args) => {
            println!("{}", replay_bench::run(args.indices)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit code for traces that could not be read: neither valid nor invalid.
const EXIT_UNREADABLE: u8 = 3;

fn run_replay(args: &ReplayArgs) -> Result<ExitCode> {
    let report = match model::replay::check_files(&args.traces) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_replay(&report);
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_replay(report: &model::replay::Report) {
    println!("nodes: {:?}  events: {}", report.nodes, report.events_read);
    for file in &report.truncated {
        println!(
            "truncated (read up to its last whole event): {}",
            file.display()
        );
    }
    for (kind, count) in &report.unknown_events {
        println!("unknown event kind {kind:?}: {count}");
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for anomaly in &report.anomalies {
        println!("ANOMALY {}: {}", anomaly.rule, anomaly.message);
        for event in &anomaly.events {
            println!(
                "    node {} seq {} time_ms {} {}",
                event.node, event.seq, event.time_ms, event.ev
            );
        }
    }
    if report.anomalies_not_listed > 0 {
        println!("... and {} more anomalies", report.anomalies_not_listed);
    }
    println!("coverage:");
    for (name, count) in &report.coverage {
        println!("    {name:<32} {count}");
    }
    println!(
        "verdict: {}",
        if report.valid { "valid" } else { "INVALID" }
    );
}

fn run_check(args: &CheckArgs) -> Result<ExitCode> {
    let model = args.model.plan()?.with_canonicalize(!args.no_symmetry);
    let strategy = match (args.dfs, args.simulation, args.seed) {
        (true, _, _) => Strategy::Dfs,
        (false, true, Some(seed)) => Strategy::Simulation { seed },
        (false, true, None) => bail!("--simulation needs --seed"),
        (false, false, _) => Strategy::Bfs,
    };
    let simulation_default = matches!(strategy, Strategy::Simulation { .. }).then_some(10);
    let time_limit = args
        .time_limit_s
        .or(simulation_default)
        .map(Duration::from_secs);
    tracing::info!(bounds = %model.bounds, bug = ?model.bug, ?strategy, "checking");
    let options = CheckOptions {
        threads: args.threads,
        time_limit,
        first_violation: args.first_violation,
    };
    let report = check(model, strategy, options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &CheckReport) {
    let bug = report.bug.map_or("none".to_string(), |b| b.to_string());
    println!(
        "bounds: {}  bug: {bug}  strategy: {:?}  symmetry: {}",
        report.bounds, report.strategy, report.symmetry
    );
    let sampled = matches!(report.strategy, Strategy::Simulation { .. });
    for property in &report.properties {
        let verdict = match property.verdict {
            Verdict::Holds => "holds",
            Verdict::Violated => "VIOLATED",
            Verdict::ExampleFound => "example found",
            Verdict::NoExample => "NO EXAMPLE",
            Verdict::Unknown if sampled => "not violated in the sampled runs",
            Verdict::Unknown => "unknown (search incomplete)",
        };
        println!(
            "{:<9} {:<28} {verdict}",
            property.expectation, property.name
        );
        if property.verdict == Verdict::Violated {
            for line in &property.path {
                println!("    {line}");
            }
        }
    }
    let memory = report
        .peak_memory_mb
        .map_or("?".to_string(), |mb| format!("{mb:.0} MB"));
    println!(
        "states generated: {}  unique states: {}  max depth: {}  seconds: {:.2}  states/s: {:.0}  peak memory: {memory}  complete: {}",
        report.states_generated, report.unique_states, report.max_depth, report.seconds, report.states_per_second, report.complete
    );
    println!("verdict: {}", if report.passed() { "pass" } else { "FAIL" });
}

fn run_explore(args: &ExploreArgs) -> Result<ExitCode> {
    // Explorer shows servers under stable names, so no renaming here.
    let model = args.model.plan()?.with_canonicalize(false);
    let addr: SocketAddr = args
        .addr
        .parse()
        .with_context(|| format!("--addr {:?} is not host:port", args.addr))?;
    // stateright panics when it cannot bind; check first for a clear error.
    drop(TcpListener::bind(addr).with_context(|| format!("cannot listen on --addr {addr}"))?);
    println!(
        "Explorer for {} (bug: {:?}) on http://{addr}/",
        model.bounds, model.bug
    );
    let _checker = model.checker().serve(addr);
    loop {
        std::thread::park();
    }
}
