//! Runtimes: where and how the nodes of a cluster run, and the faults that
//! can be done to them. One runtime per place nodes can live: `docker`
//! (containers on a private Docker network, via testcontainers) and
//! `process` (local processes on distinct loopback addresses) and `ssh`
//! (processes on remote hosts, one per node).
//!
//! Layers inside: this registry ([`AnyRuntime`], [`RuntimeKind`]), then
//! the runtimes (`process.rs`, `docker.rs` with `image.rs` and
//! `reaper.rs`, `ssh/`), then what they implement and share (`verbs.rs`:
//! the [`Runtime`] trait; `disk.rs`: faultfs mounts; `clock.rs`: clock
//! settings; `label.rs`: run labels; `exit.rs`: a node that ended by
//! itself).

pub mod clock;
pub mod disk;
pub mod docker;
pub mod exit;
pub mod image;
pub mod label;
pub mod process;
pub mod reaper;
pub mod ssh;
pub mod verbs;

use clock::ClockSetting;
use serde::Serialize;
use std::path::Path;
use verbs::{Added, Grudge, Runtime, Verb};

/// Where nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Containers on a private Docker network.
    Docker,
    /// Local processes on loopback addresses.
    Process,
    /// Processes on remote hosts over SSH.
    Ssh,
}

impl RuntimeKind {
    /// The name in `--runtime`.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
            RuntimeKind::Ssh => "ssh",
        }
    }

    /// Why this runtime cannot do `verb`, or `None` when it can.
    pub fn lacks(self, verb: Verb) -> Option<&'static str> {
        match (self, verb) {
            (RuntimeKind::Ssh, Verb::Disk) => Some("disk faults over ssh are not supported"),
            (RuntimeKind::Ssh, Verb::AddNode) => Some("membership faults start nodes during the run, and the ssh runtime has one host per node named before it"),
            _ => None,
        }
    }
}

/// Every runtime the harness can drive, dispatching the [`Runtime`] verbs to
/// the one chosen at startup (`async fn` in traits is not object safe, so an
/// enum stands in for `dyn Runtime`).
#[derive(Debug)]
pub enum AnyRuntime {
    /// Local processes with fault proxies.
    Process(Box<process::ProcessRuntime>),
    /// Containers on a Docker network.
    Docker(Box<docker::DockerRuntime>),
    /// Processes on remote hosts over SSH.
    Ssh(Box<ssh::SshRuntime>),
}

macro_rules! dispatch {
    ($self:ident, $rt:ident => $body:expr) => {
        match $self {
            AnyRuntime::Process($rt) => $body,
            AnyRuntime::Docker($rt) => $body,
            AnyRuntime::Ssh($rt) => $body,
        }
    };
}

impl Runtime for AnyRuntime {
    async fn start(&mut self) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.start().await)
    }
    fn nodes(&self) -> Vec<String> {
        dispatch!(self, rt => rt.nodes())
    }
    fn client_url(&self, node: &str) -> String {
        dispatch!(self, rt => rt.client_url(node))
    }
    fn protocol_address(&self, node: &str) -> String {
        dispatch!(self, rt => rt.protocol_address(node))
    }
    async fn add_node(
        &mut self,
        id: usize,
        founders: &[usize],
        peers: &[usize],
    ) -> anyhow::Result<Added> {
        dispatch!(self, rt => rt.add_node(id, founders, peers).await)
    }
    async fn kill(&mut self, node: &str) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.kill(node).await)
    }
    async fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.restart(node).await)
    }
    async fn pause(&mut self, node: &str) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.pause(node).await)
    }
    async fn resume(&mut self, node: &str) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.resume(node).await)
    }
    async fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.partition(grudge).await)
    }
    async fn heal(&mut self) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.heal().await)
    }
    async fn set_clock(&mut self, node: &str, setting: ClockSetting) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.set_clock(node, setting).await)
    }
    async fn reset_clock(&mut self, node: &str) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.reset_clock(node).await)
    }
    async fn disk(&mut self, node: &str, command: faultfs::Command) -> anyhow::Result<String> {
        dispatch!(self, rt => rt.disk(node, command).await)
    }
    async fn empty_disk(&mut self, node: &str) -> anyhow::Result<disk::Emptied> {
        dispatch!(self, rt => rt.empty_disk(node).await)
    }
    async fn running(&mut self, node: &str) -> bool {
        dispatch!(self, rt => rt.running(node).await)
    }
    async fn exits(&mut self) -> Vec<exit::Exit> {
        dispatch!(self, rt => rt.exits().await)
    }
    async fn collect_log(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.collect_log(node, dest).await)
    }
    async fn collect_trace(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.collect_trace(node, dest).await)
    }
    async fn teardown(&mut self) -> anyhow::Result<()> {
        dispatch!(self, rt => rt.teardown().await)
    }
}
