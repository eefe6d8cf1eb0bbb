//! What a runtime is: the [`Runtime`] trait of fault verbs in pairs whose
//! docs name each other (kill / restart, pause / resume, partition / heal,
//! set_clock / reset_clock; `disk` sends faultfs commands, its `heal`
//! command undoing delays and failures), what it is given to start a
//! cluster ([`ClusterSpec`]), the [`Grudge`] a partition enforces, and the
//! [`Verb`]s a fault declares it uses.

use crate::runtime::clock::ClockSetting;
use crate::runtime::disk::{DiskSpec, Emptied};
use crate::sut::Sut;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A kind of action a runtime does to nodes, as a fault declares it needs
/// (a pair of [`Runtime`] methods, or one). A runtime may lack one
/// (`RuntimeKind::lacks` in `runtime/mod.rs`); the ssh runtime prepares
/// its hosts for those a run's faults use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// [`Runtime::kill`] / [`Runtime::restart`].
    Kill,
    /// [`Runtime::pause`] / [`Runtime::resume`].
    Pause,
    /// [`Runtime::partition`] / [`Runtime::heal`].
    Partition,
    /// [`Runtime::set_clock`] / [`Runtime::reset_clock`].
    Clock,
    /// [`Runtime::disk`] (the node's data directory on faultfs).
    Disk,
    /// [`Runtime::add_node`]: a node started during the run.
    AddNode,
}

/// Everything a runtime needs to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The system under test: its command line, image and abilities. The
    /// runtime asks it and never branches on which system it is.
    pub sut: Sut,
    /// Number of nodes; node names are `n1..=nN`, raft ids `1..=N`.
    pub nodes: usize,
    /// The `ordeal-node` (or `etcd`) binary on the host.
    pub binary: PathBuf,
    /// Extra arguments given to every node (tick settings, `--bug ...`).
    pub node_args: Vec<String>,
    /// A directory the runtime owns for this run (data dirs, logs, clock
    /// files); removed by `teardown` unless the caller keeps it.
    pub work_dir: PathBuf,
    /// Label value put on everything the runtime creates, so that
    /// `harness clean` can find what a killed harness left behind.
    pub run_label: String,
    /// Put every node's data directory on its own faultfs mount (for the
    /// disk faults); `None`: plain directories.
    pub disk: Option<Box<DiskSpec>>,
}

/// Who drops whose traffic: `grudge[a]` is the set of nodes whose packets
/// node `a` drops (Jepsen's grudge). Symmetric cuts list both directions.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// A node started to join the running cluster ([`Runtime::add_node`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// `n<id>`.
    pub name: String,
    /// Base URL of its client API, reachable from the harness.
    pub url: String,
    /// The peer address every member dials it at: the `addr` of the
    /// `add` change (`host:port`).
    pub peer_addr: String,
}

/// The operations every runtime offers. Implemented by `DockerRuntime`,
/// `ProcessRuntime` and `SshRuntime`; the harness dispatches over them
/// through `AnyRuntime` (`runtime/mod.rs`, above this file).
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// Starts every node of the spec and returns when all processes run
    /// (not when a leader is elected).
    async fn start(&mut self) -> anyhow::Result<()>;
    /// Every node started, in start order: the founders `n1..=nN`, then
    /// the nodes [`Runtime::add_node`] started.
    fn nodes(&self) -> Vec<String>;
    /// Starts a new node `n<id>` on an empty data directory that joins the
    /// cluster founded by `founders` (`--join`), dialling the nodes `peers`
    /// (raft ids of the members now); every fault verb then reaches it and
    /// [`Runtime::teardown`] removes it. It takes part once a member adds
    /// it (`POST /members`) at [`Added::peer_addr`]; nodes restarted later
    /// are given its address. `id` must be unused in this run.
    async fn add_node(
        &mut self,
        id: usize,
        founders: &[usize],
        peers: &[usize],
    ) -> anyhow::Result<Added>;
    /// Base URL of a node's client API, e.g. `http://172.18.0.2:8001`,
    /// reachable from the harness process.
    fn client_url(&self, node: &str) -> String;
    /// `host:port` of a node's protocol listener (`Launch::listen_protocol`,
    /// NATS's client port), reachable from the harness process.
    fn protocol_address(&self, node: &str) -> String;
    /// SIGKILLs the node's process; its data directory is kept. Undone by
    /// [`Runtime::restart`].
    async fn kill(&mut self, node: &str) -> anyhow::Result<()>;
    /// Starts a killed node again on its data directory. Undoes
    /// [`Runtime::kill`].
    async fn restart(&mut self, node: &str) -> anyhow::Result<()>;
    /// Freezes the node's process (SIGSTOP / docker pause). Undone by
    /// [`Runtime::resume`].
    async fn pause(&mut self, node: &str) -> anyhow::Result<()>;
    /// Thaws a paused node. Undoes [`Runtime::pause`].
    async fn resume(&mut self, node: &str) -> anyhow::Result<()>;
    /// Drops packets between nodes as the grudge says, replacing any earlier
    /// partition. Undone by [`Runtime::heal`].
    async fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()>;
    /// Removes every partition. Undoes [`Runtime::partition`].
    async fn heal(&mut self) -> anyhow::Result<()>;
    /// Changes the node's clock through libfaketime. Undone by
    /// [`Runtime::reset_clock`].
    async fn set_clock(&mut self, node: &str, setting: ClockSetting) -> anyhow::Result<()>;
    /// Puts the node's clock back to real time. Undoes [`Runtime::set_clock`].
    async fn reset_clock(&mut self, node: &str) -> anyhow::Result<()>;
    /// Sends a faultfs command to the node's disk (its data directory's
    /// mount) and returns the answer after `ok`. `delay` and `fail` are
    /// undone by the command `heal`; `lose-unfsynced` and `torn` are power
    /// losses, undone by [`Runtime::restart`] on what they left. Fails when
    /// the run has no faultfs mounts.
    async fn disk(&mut self, node: &str, command: faultfs::Command) -> anyhow::Result<String>;
    /// Empties the node's data directory on its faultfs mount (the node
    /// stopped), durably, as an operator wiping it would; not undone (a
    /// faultfs `checkpoint` taken before can be `restore`d). Fails when
    /// the run has no faultfs mounts.
    async fn empty_disk(&mut self, node: &str) -> anyhow::Result<Emptied>;
    /// Whether the node's process (container) runs: false after
    /// [`Runtime::kill`] and after the node stopped by itself.
    async fn running(&mut self, node: &str) -> bool;
    /// The node processes that ended by themselves since the last call
    /// (exited, panicked, killed by a signal the runtime did not send),
    /// each once: never one the runtime stopped ([`Runtime::kill`],
    /// [`Runtime::teardown`]). A node reported here counts as killed: not
    /// [`Runtime::running`], and [`Runtime::restart`] starts it again.
    async fn exits(&mut self) -> Vec<crate::runtime::exit::Exit>;
    /// Copies the node's log (all restarts) to `dest`.
    async fn collect_log(&mut self, node: &str, dest: &Path) -> anyhow::Result<()>;
    /// Copies the node's Raft trace (`--trace`, all restarts) to `dest`.
    async fn collect_trace(&mut self, node: &str, dest: &Path) -> anyhow::Result<()>;
    /// Stops and removes everything the runtime created. Idempotent; also
    /// run from Drop as a last resort.
    async fn teardown(&mut self) -> anyhow::Result<()>;
}
