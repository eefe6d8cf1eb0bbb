//! The command line, parsed into plain data: the subcommands here, a
//! test's flags in `plan/args.rs` (validated into a plan by
//! [`crate::plan::Plan::from_args`]).
//!
//! Layers inside: this file (what can be asked), then one file per
//! command (`test.rs`: run tests, the default; `bench.rs`; `check.rs`;
//! `clean.rs`), which `main.rs` dispatches to. `soak` and `soak-merge`
//! are the `soak` layer's.

pub mod bench;
pub mod check;
pub mod clean;
pub mod test;

use crate::plan::args::{HostArgs, TestArgs};
use clap::{Parser, Subcommand};
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
    /// the report of DIR. The history is validated first: one the checker
    /// does not understand is refused (exit 3, naming line and field).
    Check {
        /// The run directory (e.g. store/latest); its history is
        /// history.jsonl, or history.edn (Jepsen's EDN) when there is none.
        dir: PathBuf,
        /// Judge this history file instead (`*.edn` is read as EDN);
        /// results.json is still written to DIR.
        #[arg(long)]
        history: Option<PathBuf>,
        /// ordering or register (default: DIR/test.json's workload;
        /// needed when DIR has no test.json).
        #[arg(long)]
        workload: Option<String>,
    },
    /// The Docker runtime's reaper (started by the harness itself): waits
    /// for end of file on stdin, then removes the containers, network and
    /// volumes labelled with the run.
    #[command(hide = true)]
    Reap {
        /// The run's label (`ordeal.run`).
        #[arg(long)]
        run_label: String,
    },
    /// Remove what a killed harness left behind: processes from pid files
    /// under the store, work directories, Docker containers and networks.
    Clean {
        /// The store whose leftovers to clean.
        #[arg(long, default_value = "store")]
        store: PathBuf,
        /// Hosts of the ssh runtime to clean too (their run directories,
        /// nodes and nft tables).
        #[command(flatten)]
        ssh: HostArgs,
    },
    /// Measure the harness itself: one run with no faults, as fast as the
    /// cluster answers, that prints the ops/s recorded and the recorder
    /// thread's CPU share.
    // No faults and one run: `--nemesis`, `--nemesis-interval-s` and
    // `--test-count` are not bench flags (hidden, and refused when given).
    #[command(
        mut_arg("nemesis", |a| a.hide(true)),
        mut_arg("nemesis_interval_s", |a| a.hide(true)),
        mut_arg("test_count", |a| a.hide(true)),
        mut_arg("rate", |a| a.default_value("0").help("Target operations per second over all workers (0: as fast as the cluster answers)"))
    )]
    Bench {
        /// The test to measure.
        #[command(flatten)]
        test: Box<TestArgs>,
        /// Run the benchmark with plain data directories and on faultfs,
        /// alternately, and print the ratio (faultfs / plain).
        #[arg(long)]
        compare_faultfs: bool,
        /// Run the benchmark on each of these systems (a comma list, e.g.
        /// `ordeal,nats,etcd`) at 64 and 256 clients, each with the
        /// workload it takes, and print ops/s and latency side by side.
        #[arg(long, conflicts_with = "compare_faultfs")]
        compare_suts: Option<String>,
    },
    /// Run tests back to back for a while, rotating workload × nemesis with
    /// fresh seeds; keep the store of every invalid or unknown run; print
    /// and write a summary table. Exit 1 if any run was invalid.
    // The rotation chooses system, workload and nemesis and runs each test
    // once: those flags are not soak flags (hidden, and refused when given).
    #[command(
        mut_arg("sut", |a| a.hide(true)),
        mut_arg("workload", |a| a.hide(true)),
        mut_arg("nemesis", |a| a.hide(true)),
        mut_arg("test_count", |a| a.hide(true)),
        mut_arg("seed", |a| a.help("The soak's master seed: each test's seed is drawn from it (random when absent; always printed)"))
    )]
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
        /// Run only shard I of N (1-based): turn t of the rotation belongs
        /// to shard `t mod N + 1`, so N soaks with `--shard 1/N … N/N`
        /// split the rotation between them, disjoint and covering.
        #[arg(long)]
        shard: Option<String>,
        /// Aim each ordeal turn at what the summed coverage has not reached
        /// yet (a Raft situation or a crash point: its faults, overlap,
        /// snapshot interval and crash points), drawn from the master seed,
        /// instead of the rotation's faults; each row says what it aimed at
        /// and what was reached so far.
        #[arg(long)]
        steer: bool,
        /// Flags of every test (--time-limit-s is per test).
        #[command(flatten)]
        test: Box<TestArgs>,
    },
    /// Merge the soak-summary.json of several soaks (the shards of one
    /// nightly) into one table: runs, ops, verdicts and coverage per test.
    /// Exit 1 if any run was invalid.
    SoakMerge {
        /// The soak-summary.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write the merged summary as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
