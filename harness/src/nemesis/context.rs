//! What a fault works with ([`Context`]): the cluster's runtime, the
//! registry of its nodes, the probe, the workers' client, the recorder,
//! the test's timings; and the one wait every part of a run cuts short
//! when told to stop ([`sleep_or_stop`]). The lowest module of the
//! nemesis: the faults and the scheduler build on it.

use crate::cluster::membership::Membership;
use crate::cluster::probe::Probe;
use crate::history::Recorder;
use crate::runtime::AnyRuntime;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// What every fault draws from, injects into and records to.
pub struct Context {
    /// The nodes started and where they stand; faults choose among the
    /// members, and the `member` fault changes it.
    pub membership: Membership,
    /// How many nodes founded the cluster (`n1..=nN`).
    pub founders: usize,
    /// The workers' client, told of nodes the `member` fault starts.
    pub client: Arc<workloads::SutClient>,
    /// The cluster.
    pub runtime: Arc<Mutex<AnyRuntime>>,
    /// Status queries (to find the leader, to observe clocks).
    pub probe: Probe,
    /// Where events go.
    pub recorder: Recorder,
    /// Fault duration and spacing.
    pub interval: Duration,
    /// The nodes' election timeout (a slow disk is slower than half of it).
    pub election_timeout_ms: u64,
    /// Kill and pause prefer a node holding an uncommitted tail when they
    /// do not take the leader (`--aim-uncommitted-tail`).
    pub aim_uncommitted_tail: bool,
    /// The crash points the `crash` fault arms first (`--crash-prefer`).
    pub crash_prefer: Vec<String>,
    /// Counts faults keep across their injections in one run.
    pub tallies: Tallies,
}

impl Context {
    /// The nodes that are members now (voters and learners), which every
    /// fault chooses its targets among.
    pub fn members(&self) -> Vec<String> {
        self.membership.members()
    }

    /// The leader most members name, when it is a member (a removed node
    /// may still name the leader it last knew).
    pub async fn leader(&self) -> Option<String> {
        let members = self.members();
        let leader = self.probe.leader_among(&members).await?;
        members.contains(&leader).then_some(leader)
    }

    /// Records one of the fault's events (`phase` and what it did) in the
    /// history.
    pub fn record(&self, fault: &'static str, value: Value) {
        self.recorder.nemesis(fault, value);
    }

    /// Records the fault's end on `targets`.
    pub fn record_end(&self, fault: &'static str, targets: &[String]) {
        self.record(fault, json!({"phase": "end", "targets": targets}));
    }
}

/// Counts that faults keep across their injections within one run, by
/// name (power and torn share the count of power losses so far); fresh
/// for every run, so a seed's schedule never depends on an earlier run.
#[derive(Debug, Default)]
pub struct Tallies(std::sync::Mutex<BTreeMap<&'static str, u64>>);

impl Tallies {
    /// Runs `f` on the count `name` (0 at first) and returns what it
    /// returns.
    pub fn with<R>(&self, name: &'static str, f: impl FnOnce(&mut u64) -> R) -> R {
        let mut all = self.0.lock().expect("tallies lock");
        f(all.entry(name).or_default())
    }
}

/// Sleeps; true when told to stop first.
pub async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(period) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}
