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

/// The hosts of `--runtime ssh` and of `harness clean`.
#[derive(Debug, Clone, Default, Args)]
pub struct HostArgs {
    /// Hosts for `--runtime ssh`, one per node in node order: names,
    /// addresses or `~/.ssh/config` aliases (HOST[,HOST…]).
    #[arg(long)]
    pub hosts: Option<String>,
    /// A file of hosts for `--runtime ssh`, one a line: `HOST [user=U]
    /// [port=P] [key=PATH] [dir=REMOTE_DIR]`.
    #[arg(long)]
    pub hosts_file: Option<PathBuf>,
    /// A known-hosts file to check host keys against instead of the
    /// user's (host keys are always checked).
    #[arg(long)]
    pub ssh_known_hosts: Option<PathBuf>,
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
    /// Faults to inject: none, kill, pause, partition, clock, lag, power,
    /// torn, slow-disk, disk-error, member, transfer, all, or a
    /// comma-separated list (kill,partition). The disk faults need FUSE
    /// (root and /dev/fuse).
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
    /// p mod nodes, as in Jepsen; use at least as many as nodes). The
    /// default, 30, gives each of 3 nodes ten, so that the processes of
    /// the live nodes can carry the rate while a node is down.
    #[arg(long, default_value_t = 30)]
    pub concurrency: usize,
    /// Where the nodes run: auto (ssh when hosts are given, docker when a
    /// daemon answers, else process), docker, process or ssh.
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
    /// How long each fault is held, in seconds; the nemesis waits half of
    /// it before each fault, so one fault starts every 1.5× this (a lag
    /// fault is held longer, until the leader has compacted past its
    /// target).
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
    #[arg(long, default_value_t = workloads::REQUEST_TIMEOUT_DEFAULT.as_millis() as u64)]
    pub request_timeout_ms: u64,
    /// The node binary to run (default: built from this workspace with
    /// `cargo build --release -p node`, or found next to the harness).
    #[arg(long, env = "ORDEAL_NODE_BIN")]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary for `--sut etcd` (default: `etcd` on PATH).
    #[arg(long, env = "ORDEAL_ETCD_BIN")]
    pub etcd_binary: Option<PathBuf>,
    /// The hosts of `--runtime ssh`.
    #[command(flatten)]
    pub ssh: HostArgs,
    /// ordeal-node's `--snapshot-interval-bytes`: a snapshot (and log
    /// compaction) after this many bytes of applied transactions; small
    /// enough that a 60 s run at 200 ops/s takes several on every node.
    #[arg(long, default_value_t = 32_768)]
    pub snapshot_interval_bytes: u64,
    /// Put every node's data directory on its own faultfs mount even
    /// without a disk fault (the disk faults always do; docs/faultfs.md).
    #[arg(long)]
    pub faultfs: bool,
    /// Kill and pause prefer, when they do not take the leader, a node
    /// holding entries beyond its commit index (a restart with an
    /// uncommitted tail); `harness soak` sets it when its coverage says
    /// that situation is rare.
    #[arg(long)]
    pub aim_uncommitted_tail: bool,
}
