//! The command line, parsed into plain data (validated later by
//! [`crate::plan::Plan::from_args`]).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// ordeal: a Jepsen-style test harness for a Raft ordering service.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without a subcommand, run a test with the flags below.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The test to run (when no subcommand is given).
    #[command(flatten)]
    pub test: TestArgs,
}

/// Subcommands besides running a test.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Re-judge a stored run without a cluster: rewrites results.json and
    /// the report of DIR.
    Check {
        /// The run directory (e.g. store/latest).
        dir: PathBuf,
    },
    /// Remove what a killed harness left behind: processes from pid files
    /// under the store, work directories, Docker containers and networks.
    Clean {
        /// The store whose leftovers to clean.
        #[arg(long, default_value = "store")]
        store: PathBuf,
    },
    /// Measure the harness itself: a max-rate run with no faults that
    /// prints the ops/s recorded and the recorder thread's CPU share.
    Bench {
        /// The test to measure (`--nemesis` and `--rate` are ignored: no
        /// faults, as fast as the cluster answers).
        #[command(flatten)]
        test: Box<TestArgs>,
    },
    /// Run tests back to back for a while, rotating workload × nemesis with
    /// fresh seeds; keep the store of every invalid or unknown run; print
    /// and write a summary table. Exit 1 if any run was invalid.
    Soak {
        /// How long to keep starting tests.
        #[arg(long, default_value_t = 2700)]
        duration_s: u64,
        /// Valid runs whose store is kept (the most recent ones).
        #[arg(long, default_value_t = 5)]
        keep_valid: usize,
        /// Stop after this many runs even if time remains.
        #[arg(long)]
        max_runs: Option<usize>,
        /// Systems under test to rotate through: a comma list of ordeal and
        /// etcd, or auto (ordeal, plus etcd when `etcd` is on PATH).
        #[arg(long, default_value = "auto")]
        suts: String,
        /// Flags of every test (its --workload, --nemesis and --seed are
        /// replaced by the rotation; --time-limit-s is per test).
        #[command(flatten)]
        test: Box<TestArgs>,
    },
}

/// The flags of one test, as typed.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// The system under test: ordeal (our ordering node) or etcd (the
    /// host's etcd 3.4, Debian's etcd-server; register workload only).
    #[arg(long, default_value = "ordeal")]
    pub sut: String,
    /// How etcd serves reads: linearizable (through the leader) or
    /// serializable (from the member's local state; may be stale).
    #[arg(long, default_value = "linearizable")]
    pub read_mode: String,
    /// The workload: ordering (total-order broadcast) or register
    /// (keyed cas-registers, checked for linearizability).
    #[arg(long, default_value = "ordering")]
    pub workload: String,
    /// Faults to inject: none, kill, pause, partition, clock, all, or a
    /// comma-separated list (kill,partition).
    #[arg(long, default_value = "none")]
    pub nemesis: String,
    /// Number of nodes (3 or 5 are typical; at least 1, at most 9).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the workload runs before the final heal and reads.
    #[arg(long, default_value_t = 60)]
    pub time_limit_s: u64,
    /// Target operations per second over all workers (0 = unlimited).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Number of concurrent client workers (process p talks to node
    /// p mod nodes, as in Jepsen; use at least as many as nodes).
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Where the nodes run: auto (docker when a daemon answers, else
    /// process), docker or process.
    #[arg(long, default_value = "auto")]
    pub runtime: String,
    /// When the node acknowledges a submit: committed or accepted.
    #[arg(long, default_value = "committed")]
    pub ack: String,
    /// A node bug switch passed to every node (stale-read,
    /// ack-before-commit, no-fsync, forget-vote); repeatable.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
    /// Seed for the generators and the nemesis schedule (random when
    /// absent; always printed and stored).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds between the start of one fault and the next (each fault lasts
    /// about this long too).
    #[arg(long, default_value_t = 10)]
    pub nemesis_interval_s: u64,
    /// Seconds given to the cluster after the final heal to elect a leader
    /// and catch up before the final reads.
    #[arg(long, default_value_t = 10)]
    pub recovery_s: u64,
    /// The store directory runs are written to.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Run the test this many times with fresh seeds, stopping at the first
    /// invalid run.
    #[arg(long, default_value_t = 1)]
    pub test_count: u32,
    /// Per-request client timeout, in milliseconds (a timeout is `info`).
    #[arg(long, default_value_t = 5000)]
    pub request_timeout_ms: u64,
    /// The node binary to run (default: built from this workspace with
    /// `cargo build --release -p node`, or found next to the harness).
    #[arg(long, env = "ORDEAL_NODE_BIN")]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary for `--sut etcd` (default: `etcd` on PATH).
    #[arg(long, env = "ORDEAL_ETCD_BIN")]
    pub etcd_binary: Option<PathBuf>,
    /// Kill and pause prefer, when they do not take the leader, a node
    /// holding entries beyond its commit index (a restart with an
    /// uncommitted tail); `harness soak` sets it when its coverage says
    /// that situation is rare.
    #[arg(long)]
    pub aim_uncommitted_tail: bool,
}
