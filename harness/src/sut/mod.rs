//! The systems under test, registered: each is one module implementing
//! [`System`] (Jepsen's `DB`: its command line, its timings, its client,
//! the abilities it has for faults, and how its status and metrics are
//! read). Runtimes start whatever [`Sut`] they are given without knowing
//! which system it is.
//!
//! Adding a system: a module implementing [`System`], a variant of [`Sut`]
//! and its arm in `dispatch!` (the two registration lines), then its client
//! in `workloads` (a variant of `SutClient`).
//!
//! Layers inside: this registry, then the systems (`ordeal.rs`, `etcd.rs`, `nats.rs`),
//! then what they implement and use (`system.rs`, `http.rs`).

pub mod etcd;
pub mod http;
pub mod nats;
pub mod ordeal;
pub mod system;

use http::NodeHttp;
use serde_json::Value;
use std::path::PathBuf;
pub use system::{Ability, Asked, Binaries, Launch, Options, PeerLinks, System, Tuning};
use workloads::{ReadMode, SutClient};

/// Which system runs on the nodes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Sut {
    /// Our own `ordeal-node`.
    Ordeal,
    /// Debian's etcd (a third-party system under test).
    Etcd,
    /// Debian's nats-server with JetStream (a third-party ordering
    /// service).
    Nats,
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
            Sut::Nats => {
                let $s = nats::Nats;
                $body
            }
        }
    };
}

impl Sut {
    /// Every system, in the order `--sut` lists them.
    pub fn all() -> &'static [Sut] {
        <Sut as clap::ValueEnum>::value_variants()
    }

    /// Every system's name, in words: `ordeal or etcd` (`conjunction`
    /// joins the last two).
    pub fn listed(conjunction: &str) -> String {
        let names: Vec<&str> = Sut::all().iter().map(|s| s.name()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} {conjunction} {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// Whether the node reads its clock through libfaketime.
    pub fn reads_faketime(self) -> bool {
        self.lacks(Ability::Faketime).is_none()
    }
}

impl std::str::FromStr for Sut {
    type Err = String;
    fn from_str(text: &str) -> Result<Sut, String> {
        Sut::all()
            .iter()
            .copied()
            .find(|s| s.name() == text)
            .ok_or_else(|| format!("unknown system `{text}` (expected {})", Sut::listed("or")))
    }
}

impl System for Sut {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    fn binary(&self, binaries: &Binaries) -> anyhow::Result<PathBuf> {
        dispatch!(self, s => s.binary(binaries))
    }
    fn on_host(&self, binaries: &Binaries) -> bool {
        dispatch!(self, s => s.on_host(binaries))
    }
    fn allows(&self, asked: &Asked) -> anyhow::Result<ReadMode> {
        dispatch!(self, s => s.allows(asked))
    }
    fn rerun_flags(&self, options: &Options) -> (String, String) {
        dispatch!(self, s => s.rerun_flags(options))
    }
    fn node_flags(&self, options: &Options) -> Vec<String> {
        dispatch!(self, s => s.node_flags(options))
    }
    fn election_timeout_ms(&self, options: &Options) -> u64 {
        dispatch!(self, s => s.election_timeout_ms(options))
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
    fn lacks(&self, ability: Ability) -> Option<&'static str> {
        dispatch!(self, s => s.lacks(ability))
    }
    fn client_endpoint(&self, url: String, protocol: String) -> String {
        dispatch!(self, s => s.client_endpoint(url, protocol))
    }
    fn client(&self, options: &Options, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        dispatch!(self, s => s.client(options, nodes))
    }
    async fn ready(&self, options: &Options, nodes: &[(String, String)]) -> anyhow::Result<()> {
        dispatch!(self, s => s.ready(options, nodes).await)
    }
    fn artifacts(&self) -> &'static [(&'static str, &'static str)] {
        dispatch!(self, s => s.artifacts())
    }
    fn absent_copy(&self, node: &str, status: &Value, error: &str) -> Option<Value> {
        dispatch!(self, s => s.absent_copy(node, status, error))
    }
    async fn status(&self, http: &NodeHttp, node: &str) -> Option<Value> {
        dispatch!(self, s => s.status(http, node).await)
    }
    async fn fsync(&self, http: &NodeHttp, node: &str, prometheus: Option<&str>) -> Option<Value> {
        dispatch!(self, s => s.fsync(http, node, prometheus).await)
    }
    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        dispatch!(self, s => s.rotation())
    }
    fn traces(&self) -> bool {
        dispatch!(self, s => s.traces())
    }
    fn durable_files(&self) -> &'static [(&'static str, &'static str)] {
        dispatch!(self, s => s.durable_files())
    }
}
