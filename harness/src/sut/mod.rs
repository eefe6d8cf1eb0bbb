//! The system under test, as one protocol (Jepsen's `DB`): its command line,
//! its timings, its client, the faults it can feel, and how its status and
//! metrics are read. Runtimes start whatever [`Sut`] they are given without
//! knowing which system it is; each system is one module here.
//!
//! Adding a system: a module implementing [`System`], a variant of [`Sut`]
//! and its arm in `dispatch!` (the two registration lines), then its client
//! in `workloads` (a variant of `SutClient`).

pub mod etcd;
pub mod ordeal;

use crate::plan::{Fault, Plan};
use crate::probe::Probe;
use serde_json::Value;
use std::path::PathBuf;
use workloads::SutClient;

/// Which system runs on the nodes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Sut {
    /// Our own `ordeal-node`.
    Ordeal,
    /// Debian's etcd (the third-party system under test).
    Etcd,
}

/// Runs `$body` with `$s` bound to the implementation of the [`Sut`].
macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Sut::Ordeal => {
                let $s = ordeal::Ordeal;
                $body
            }
            Sut::Etcd => {
                let $s = etcd::Etcd;
                $body
            }
        }
    };
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
    fn binary(&self, plan: &Plan) -> anyhow::Result<PathBuf>;
    /// Whether the system can be run here without building anything.
    fn on_host(&self, args: &crate::cli::TestArgs) -> bool;
    /// The flags every node gets (test timings, bug switches).
    fn node_flags(&self, plan: &Plan) -> Vec<String>;
    /// The election timeout the nodes run with, ms.
    fn election_timeout_ms(&self) -> u64;
    /// The node's command line (after the program).
    fn command(&self, launch: &Launch) -> Vec<String>;
    /// How nodes dial each other.
    fn peer_links(&self) -> PeerLinks;
    /// The image name and the path of the binary inside it.
    fn image(&self) -> (&'static str, &'static str);
    /// Environment of a node that does not inherit the harness's (a
    /// container).
    fn container_env(&self) -> &'static [(&'static str, &'static str)];
    /// Why a fault cannot reach this system, or `None` when it can.
    fn refuses(&self, fault: Fault) -> Option<&'static str>;
    /// The client the workers use.
    fn client(&self, plan: &Plan, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient>;
    /// A node's status in ordeal-node's shape (`leader` as a node number,
    /// `height`), `None` when it does not answer.
    async fn status(&self, probe: &Probe, node: &str) -> Option<Value>;
    /// A node's fsync summary (docs/store.md), from its Prometheus text
    /// when the system has no other source.
    async fn fsync(&self, probe: &Probe, node: &str, prometheus: Option<&str>) -> Option<Value>;
    /// The soak's turns for this system: (workload, nemesis).
    fn rotation(&self) -> &'static [(&'static str, &'static str)];
    /// Whether the nodes write a Raft trace (`Launch::trace_file`) for
    /// the `raft` checker.
    fn traces(&self) -> bool;
}

impl Sut {
    /// Every system, in the order `--sut` lists them.
    pub fn all() -> &'static [Sut] {
        <Sut as clap::ValueEnum>::value_variants()
    }

    /// Whether the node reads its clock through libfaketime.
    pub fn reads_faketime(self) -> bool {
        self.refuses(Fault::Clock).is_none()
    }
}

impl std::str::FromStr for Sut {
    type Err = String;
    fn from_str(text: &str) -> Result<Sut, String> {
        Sut::all()
            .iter()
            .copied()
            .find(|s| s.name() == text)
            .ok_or_else(|| format!("unknown system `{text}` (expected ordeal or etcd)"))
    }
}

impl System for Sut {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    fn binary(&self, plan: &Plan) -> anyhow::Result<PathBuf> {
        dispatch!(self, s => s.binary(plan))
    }
    fn on_host(&self, args: &crate::cli::TestArgs) -> bool {
        dispatch!(self, s => s.on_host(args))
    }
    fn node_flags(&self, plan: &Plan) -> Vec<String> {
        dispatch!(self, s => s.node_flags(plan))
    }
    fn election_timeout_ms(&self) -> u64 {
        dispatch!(self, s => s.election_timeout_ms())
    }
    fn command(&self, launch: &Launch) -> Vec<String> {
        dispatch!(self, s => s.command(launch))
    }
    fn peer_links(&self) -> PeerLinks {
        dispatch!(self, s => s.peer_links())
    }
    fn image(&self) -> (&'static str, &'static str) {
        dispatch!(self, s => s.image())
    }
    fn container_env(&self) -> &'static [(&'static str, &'static str)] {
        dispatch!(self, s => s.container_env())
    }
    fn refuses(&self, fault: Fault) -> Option<&'static str> {
        dispatch!(self, s => s.refuses(fault))
    }
    fn client(&self, plan: &Plan, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        dispatch!(self, s => s.client(plan, nodes))
    }
    async fn status(&self, probe: &Probe, node: &str) -> Option<Value> {
        dispatch!(self, s => s.status(probe, node).await)
    }
    async fn fsync(&self, probe: &Probe, node: &str, prometheus: Option<&str>) -> Option<Value> {
        dispatch!(self, s => s.fsync(probe, node, prometheus).await)
    }
    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        dispatch!(self, s => s.rotation())
    }
    fn traces(&self) -> bool {
        dispatch!(self, s => s.traces())
    }
}
