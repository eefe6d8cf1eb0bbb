//! What a system under test is to the harness (Jepsen's `DB`): the
//! [`System`] protocol, where one node listens and whom it dials
//! ([`Launch`], [`PeerLinks`]), the abilities faults ask for
//! ([`Ability`]), and what a system reads of the test ([`Options`],
//! [`Binaries`]: the plan hands them down, so that no system knows the
//! plan).

use super::http::NodeHttp;
use serde_json::Value;
use std::path::PathBuf;
use workloads::{Ack, ReadMode, SutClient};

/// An ability a fault needs of the system (Jepsen's optional protocols:
/// a fault asks, the system says why it lacks one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ability {
    /// Its nodes read their clocks through libfaketime (clock faults).
    Faketime,
    /// Its nodes run on faultfs (disk faults).
    Faultfs,
    /// The harness can change its membership and move its leadership
    /// (ordeal-node's `POST /members`, `POST /transfer`).
    MembershipApi,
    /// A leader compacts past a follower cut off within a run, so that it
    /// catches up by snapshot (the lag fault).
    SnapshotCatchUp,
    /// It takes ordeal-node's settings ([`Tuning`]: block cutter,
    /// snapshot interval, catch-up entries, tick), which the swarm draws.
    Tuning,
    /// Named crash points the harness can arm at run time (ordeal-node's
    /// `POST /crash-points`, docs/crash-points.md).
    CrashPoints,
}

/// The binaries the flags name (`--node-binary`, `--etcd-binary`), each
/// system taking its own.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// ordeal-node's.
    pub node: Option<PathBuf>,
    /// etcd's.
    pub etcd: Option<PathBuf>,
    /// nats-server's.
    pub nats: Option<PathBuf>,
}

/// What the flags ask of a system beyond faults, for it to allow or
/// refuse ([`System::allows`]).
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The workload's name (`--workload`).
    pub workload: &'a str,
    /// `--read-mode` as given.
    pub read_mode: &'a str,
    /// `--bug` switches.
    pub bugs: &'a [String],
}

/// What a system reads of the test: timings and switches for its nodes'
/// flags, and its client's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The test's seed (names the client's transactions).
    pub seed: u64,
    /// When a node acknowledges a submit.
    pub ack: Ack,
    /// How reads are served (etcd).
    pub read_mode: ReadMode,
    /// Client request timeout, ms.
    pub request_timeout_ms: u64,
    /// ordeal-node's settings (drawn per run by the swarm, or pinned).
    pub tuning: Tuning,
    /// Node bug switches.
    pub bugs: Vec<String>,
}

/// ordeal-node's settings a run draws or pins (`plan/swarm.rs`), each
/// the node's flag of the same name (docs/node-api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tuning {
    /// `--snapshot-interval-bytes`: a snapshot after this many bytes of
    /// applied transactions.
    pub snapshot_interval_bytes: u64,
    /// `--snapshot-catchup-entries`: entries kept behind a snapshot.
    pub snapshot_catchup_entries: u64,
    /// `--max-message-count`: transactions per block at most.
    pub max_message_count: u64,
    /// `--preferred-max-bytes`: the block cutter's preferred block size.
    pub preferred_max_bytes: u64,
    /// `--batch-timeout-ms`: a non-empty batch cut after this long.
    pub batch_timeout_ms: u64,
    /// `--max-inflight-blocks`: blocks proposed and not applied, at most.
    pub max_inflight_blocks: u64,
    /// `--tick-ms`: the raft tick.
    pub tick_ms: u64,
    /// `--election-tick`: ticks without a leader before an election
    /// (the heartbeat is always one tick).
    pub election_tick: u64,
    /// `--cut-when-idle`: group commit, a batch cut as soon as the
    /// leader has no block in flight (false: only count, bytes and the
    /// timeout cut). Runs stored before it existed had it on.
    #[serde(default = "group_commit_on")]
    pub cut_when_idle: bool,
}

/// ordeal-node's default for `--cut-when-idle`.
fn group_commit_on() -> bool {
    true
}

impl Tuning {
    /// The election timeout these settings give, ms.
    pub fn election_timeout_ms(&self) -> u64 {
        self.tick_ms * self.election_tick
    }
}

/// How a node reaches its peers, which decides how a runtime can cut links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerLinks {
    /// Each node can be given its own address for every peer: one fault
    /// proxy per ordered pair of nodes.
    PerPair,
    /// Every node dials the one address a peer advertises: one inbound
    /// proxy per node, which tells senders apart by the `X-PeerURLs`
    /// header the system sends.
    Advertised,
}

/// Where one node listens and whom it dials, as the runtime arranged it.
/// Addresses are `host:port`.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// Node name, `n<id>`.
    pub name: &'a str,
    /// Raft id, 1-based.
    pub id: usize,
    /// The data directory as the node sees it.
    pub data_dir: String,
    /// Where the node listens for peers.
    pub listen_peer: String,
    /// Where peers reach this node ([`PeerLinks::Advertised`] only).
    pub advertise_peer: String,
    /// Where the node listens for clients.
    pub listen_client: String,
    /// Where clients reach this node.
    pub advertise_client: String,
    /// Where the node listens for clients of its own wire protocol, when
    /// that is not the HTTP endpoint at `listen_client` (NATS: its client
    /// port, while `listen_client` serves its monitoring). Ignored by a
    /// system whose clients speak HTTP ([`System::client_endpoint`]).
    pub listen_protocol: String,
    /// Every member (itself included): id and the address this node dials.
    pub peers: Vec<(usize, String)>,
    /// A token unique to the run (etcd's cluster token).
    pub cluster_token: &'a str,
    /// Flags every node gets ([`System::node_flags`]).
    pub flags: &'a [String],
    /// Where the node writes its Raft trace (`docs/trace.md`), as the node
    /// sees it; outside its data directory. Ignored by a system without
    /// one ([`System::traces`]).
    pub trace_file: String,
    /// A node that joins a running cluster (`member` nemesis): the
    /// founders' ids, so that it starts empty outside the configuration.
    /// Empty for a founder.
    pub join: Vec<usize>,
}

/// What the harness needs to know of a system under test.
#[allow(async_fn_in_trait)]
pub trait System {
    /// The name in flags, plan names and history.
    fn name(&self) -> &'static str;
    /// The system's binary on the host.
    fn binary(&self, binaries: &Binaries) -> anyhow::Result<PathBuf>;
    /// Whether the system can be run here without building anything.
    fn on_host(&self, binaries: &Binaries) -> bool;
    /// The read mode it serves, or an error naming the flag it cannot
    /// take (a workload, a read mode, bug switches).
    fn allows(&self, asked: &Asked) -> anyhow::Result<ReadMode>;
    /// The flags that name it and its own settings in a rerun command:
    /// those before `--workload`, and those after `--request-timeout-ms`.
    fn rerun_flags(&self, options: &Options) -> (String, String);
    /// The flags every node gets (test timings, bug switches).
    fn node_flags(&self, options: &Options) -> Vec<String>;
    /// The election timeout the nodes run with, ms.
    fn election_timeout_ms(&self, options: &Options) -> u64;
    /// The node's command line (after the program).
    fn command(&self, launch: &Launch) -> Vec<String>;
    /// How nodes dial each other.
    fn peer_links(&self) -> PeerLinks;
    /// The image name and the path of the binary inside it.
    fn image(&self) -> (&'static str, &'static str);
    /// Environment of a node that does not inherit the harness's (a
    /// container).
    fn container_env(&self) -> &'static [(&'static str, &'static str)];
    /// Why the system lacks an ability some faults need, or `None` when
    /// it has it (each fault asks for the abilities it needs).
    fn lacks(&self, ability: Ability) -> Option<&'static str>;
    /// What its client dials of a node: its HTTP base URL (`url`, the
    /// runtime's `client_url`) or its protocol listener (`protocol`,
    /// `host:port`, [`Launch::listen_protocol`] as the harness reaches it).
    fn client_endpoint(&self, url: String, protocol: String) -> String;
    /// The client the workers use, given each node's name and
    /// [`System::client_endpoint`].
    fn client(&self, options: &Options, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient>;
    /// Readies a started cluster for the workload before the harness waits
    /// for its leader (NATS: the stream created, replicated on every
    /// node); `nodes` as [`System::client`] takes them.
    async fn ready(&self, options: &Options, nodes: &[(String, String)]) -> anyhow::Result<()>;
    /// The value of a final read proving the node holds nothing, when its
    /// read failed with `error` and its `status` shows it has no copy
    /// (NATS: the cluster answers "stream not found" and the server's own
    /// `/jsz` lists no stream); `None` leaves the read a `fail`.
    fn absent_copy(&self, node: &str, status: &Value, error: &str) -> Option<Value>;
    /// The node's own HTTP documents copied into its store directory at the
    /// end of a run: (path on its HTTP endpoint, file name).
    fn artifacts(&self) -> &'static [(&'static str, &'static str)];
    /// A node's status in ordeal-node's shape (`leader` as a node number,
    /// `height`), `None` when it does not answer.
    async fn status(&self, http: &NodeHttp, node: &str) -> Option<Value>;
    /// A node's fsync summary (docs/store.md), from its Prometheus text
    /// when the system has no other source.
    async fn fsync(&self, http: &NodeHttp, node: &str, prometheus: Option<&str>) -> Option<Value>;
    /// The soak's turns for this system: (workload, nemesis).
    fn rotation(&self) -> &'static [(&'static str, &'static str)];
    /// Whether the nodes write a Raft trace (`Launch::trace_file`) for
    /// the `raft` checker.
    fn traces(&self) -> bool;
    /// The durable files the `corrupt` fault damages, by kind: (kind,
    /// glob from the data directory's root, faultfs's `corrupt-pick`
    /// syntax). Empty for a system `corrupt` cannot reach.
    fn durable_files(&self) -> &'static [(&'static str, &'static str)];
}
