//! The flags of one test as typed (parsed by clap into plain data, and
//! validated into a `Plan` by `plan/mod.rs`), and the flags naming the
//! hosts of the ssh runtime.

use crate::nemesis::faults::Fault;
use crate::nemesis::package::FaultPackage;
use crate::plan::swarm::Pins;
use crate::sut::Binaries;
use clap::Args;
use std::path::PathBuf;

/// `--nemesis`'s help: the registry's faults by name.
fn nemesis_help() -> String {
    format!(
        "Faults to inject: none, {}, all (every fault but {}, run only when named), or a comma-separated list (kill,partition). The disk faults need FUSE (root and /dev/fuse)",
        Fault::names().join(", "),
        Fault::ALL
            .iter()
            .filter(|f| !f.in_all())
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
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
    /// The system under test: ordeal (our ordering node), etcd (the
    /// host's etcd 3.4, Debian's etcd-server; register workload only) or
    /// nats (the host's nats-server 2.9 with JetStream; ordering workload
    /// only).
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
    // Faults to inject: none, every fault of the registry by name, all, or
    // a comma list (the help lists the registry's names).
    #[arg(long, default_value = "none", help = nemesis_help())]
    pub nemesis: String,
    /// Faults in force at once at most: each cycle draws this many of
    /// different kinds (no more than the kinds named), each on nodes none
    /// of the others touches, held together (1: one at a time).
    #[arg(long, default_value_t = 1)]
    pub nemesis_overlap: usize,
    /// Number of nodes (at least 1, at most 9); drawn, 3 or 5, by the
    /// swarm when absent (3 with `--swarm off`; the host count over ssh).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// on: each run draws from its seed what no flag pins: the node count
    /// and ordeal-node's settings (snapshot interval, catch-up entries,
    /// block cutter, in-flight blocks, tick and election timeout); off:
    /// the defaults (test.json's `swarm` says which were drawn).
    #[arg(long, default_value = "on")]
    pub swarm: String,
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
    /// ack-before-commit, no-fsync, forget-vote, install-drops-register,
    /// restart-skips-entry, ack-before-fsync,
    /// snapshot-after-install-panics); repeatable.
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
    /// `cargo build --release --workspace --bin ordeal-node`, or found next
    /// to the harness).
    #[arg(long, env = "ORDEAL_NODE_BIN")]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary for `--sut etcd` (default: `etcd` on PATH).
    #[arg(long, env = "ORDEAL_ETCD_BIN")]
    pub etcd_binary: Option<PathBuf>,
    /// The nats-server binary for `--sut nats` (default: `nats-server` on
    /// PATH, else /usr/sbin/nats-server).
    #[arg(long, env = "ORDEAL_NATS_BIN")]
    pub nats_binary: Option<PathBuf>,
    /// The hosts of `--runtime ssh`.
    #[command(flatten)]
    pub ssh: HostArgs,
    /// ordeal-node's `--snapshot-interval-bytes`: a snapshot (and log
    /// compaction) after this many bytes of applied transactions (swarm:
    /// drawn 4 KiB … 20 MiB; off: 32 KiB, several a run on every node).
    #[arg(long)]
    pub snapshot_interval_bytes: Option<u64>,
    /// ordeal-node's `--snapshot-catchup-entries` (swarm: drawn 0 … 1000;
    /// off: 4).
    #[arg(long)]
    pub snapshot_catchup_entries: Option<u64>,
    /// ordeal-node's `--max-message-count`, transactions per block (swarm:
    /// drawn 1 … 500; off: 500).
    #[arg(long)]
    pub max_message_count: Option<u64>,
    /// ordeal-node's `--preferred-max-bytes` (swarm: drawn 4 KiB … 2 MiB;
    /// off: 2 MiB).
    #[arg(long)]
    pub preferred_max_bytes: Option<u64>,
    /// ordeal-node's `--batch-timeout-ms` (swarm: drawn 2 … 1000; off: 20).
    #[arg(long)]
    pub batch_timeout_ms: Option<u64>,
    /// ordeal-node's `--max-inflight-blocks` (swarm: drawn 1 … 10; off: 5).
    #[arg(long)]
    pub max_inflight_blocks: Option<u64>,
    /// ordeal-node's `--tick-ms` (swarm: drawn 20 … 500; off: 100).
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// ordeal-node's `--election-tick` (swarm: drawn for an election
    /// timeout of 0.3 … 2.5 s; off: 10, 1 s).
    #[arg(long)]
    pub election_tick: Option<u64>,
    /// ordeal-node's `--cut-when-idle` (group commit; swarm: drawn, off a
    /// third of the time; off: true, the node's default).
    #[arg(long, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cut_when_idle: Option<bool>,
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
    /// The crash points the `crash` fault arms first, a comma list
    /// (`harness soak --steer` sets it for points never reached).
    #[arg(long, default_value = "", hide = true)]
    pub crash_prefer: String,
}

impl TestArgs {
    /// The settings the flags pin (`plan/swarm.rs` draws the others).
    pub fn pins(&self) -> Pins {
        Pins {
            nodes: self.nodes,
            snapshot_interval_bytes: self.snapshot_interval_bytes,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            max_message_count: self.max_message_count,
            preferred_max_bytes: self.preferred_max_bytes,
            batch_timeout_ms: self.batch_timeout_ms,
            max_inflight_blocks: self.max_inflight_blocks,
            tick_ms: self.tick_ms,
            election_tick: self.election_tick,
            cut_when_idle: self.cut_when_idle,
        }
    }

    /// The binaries the flags name, for the system under test.
    pub fn binaries(&self) -> Binaries {
        Binaries {
            node: self.node_binary.clone(),
            etcd: self.etcd_binary.clone(),
            nats: self.nats_binary.clone(),
        }
    }
}
