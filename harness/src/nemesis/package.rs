//! A fault as one package (Jepsen's `nemesis/combined.clj`): its name,
//! what it refuses and why, how it draws its targets and parameters, how
//! it is injected, held and healed, and how it is undone at the end of a
//! run, all in one file of `faults/` behind [`FaultPackage`].
//!
//! Drawing is apart from doing: [`FaultPackage::draw`] takes the seeded
//! random stream (and may ask the cluster: who leads, who holds an
//! uncommitted tail) and returns a [`Planned`] fault, plain data with
//! concrete nodes and parameters; [`FaultPackage::inject`] does a
//! [`Planned`] fault without drawing anything. So a schedule recorded as
//! its [`Planned`] faults can be injected again without the random
//! stream. The same holds at the heal
//! ([`FaultPackage::draw_heal`], then [`FaultPackage::heal`]).
//!
//! How the report draws a fault is not decided here: the reports crate
//! reads each nemesis event's `f` and `targets` from the history.

use crate::nemesis::context::Context;
use crate::runtime::verbs::Verb;
use crate::runtime::{AnyRuntime, RuntimeKind};
use crate::sut::Sut;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::any::Any;
use tokio::sync::watch;

/// A fault drawn and not yet done: the nodes it will touch and its
/// parameters, as plain data (what the fault's start event records, and
/// what it needs beyond that, such as a torn write's seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// The nodes it will touch; empty when the draw found nothing to do
    /// (no leader answered a membership change).
    pub targets: Vec<String>,
    /// Its parameters in the fault's own shape (a grudge, a clock
    /// setting, a membership change); `null` when it has none.
    pub params: Value,
}

impl Planned {
    /// A fault on `targets` with `params` (a fault's own serialisable
    /// struct).
    pub fn new(targets: Vec<String>, params: impl Serialize) -> Planned {
        Planned {
            targets,
            params: serde_json::to_value(params).expect("fault parameters serialise"),
        }
    }

    /// The parameters read back as the fault's own struct; an error names
    /// the fault and what did not fit (a schedule given by hand).
    pub fn params<T: for<'de> Deserialize<'de>>(&self, fault: &str) -> anyhow::Result<T> {
        serde_json::from_value(self.params.clone())
            .map_err(|e| anyhow::anyhow!("{fault}: parameters {}: {e}", self.params))
    }
}

/// A fault in force: its nodes, and what undoing it needs, in the fault's
/// own type (downcast by its [`FaultPackage::heal`]).
pub struct Active {
    /// The nodes it touched (the progress bar shows them).
    pub targets: Vec<String>,
    /// What the fault keeps to undo itself (`()` when the targets are
    /// enough).
    pub undo: Box<dyn Any + Send + Sync>,
}

impl Active {
    /// A fault in force on `targets`, undone from `undo`.
    pub fn new(targets: Vec<String>, undo: impl Any + Send + Sync) -> Active {
        Active {
            targets,
            undo: Box::new(undo),
        }
    }

    /// The undo state as the fault's own type.
    pub fn undo<T: 'static>(&mut self) -> Option<&mut T> {
        self.undo.downcast_mut()
    }
}

/// One fault. The registry (`faults/mod.rs`) lists every fault in the
/// order the plan keeps them and rounds draw them; the scheduler
/// (`nemesis/mod.rs`) calls, each cycle: [`draw`](Self::draw),
/// [`inject`](Self::inject), waits the interval, [`hold`](Self::hold),
/// [`draw_heal`](Self::draw_heal), [`heal`](Self::heal); after the last
/// cycle the run calls [`teardown`](Self::teardown) on every node.
#[allow(async_fn_in_trait)]
pub trait FaultPackage {
    /// The name in `--nemesis`, plan names and the history's `f`.
    fn name(&self) -> &'static str;

    /// The runtime verbs it uses: a runtime lacking one refuses it (by
    /// default), and the ssh runtime readies its hosts for them.
    fn verbs(&self) -> &'static [Verb];

    /// Why the system under test cannot feel it (by the [`Ability`]
    /// it lacks), or `None` when it can.
    ///
    /// [`Ability`]: crate::sut::Ability
    fn refused_by(&self, sut: Sut) -> Option<&'static str>;

    /// Why `runtime` cannot inject it, or `None` when it can; by default,
    /// why the runtime lacks one of its [`verbs`](Self::verbs).
    fn refused_on(&self, runtime: RuntimeKind) -> Option<&'static str> {
        self.verbs().iter().find_map(|v| runtime.lacks(*v))
    }

    /// Whether it needs every data directory on faultfs (refused, by
    /// name, where FUSE cannot be had); by default, whether it uses the
    /// [`Verb::Disk`].
    fn needs_faultfs(&self) -> bool {
        self.verbs().contains(&Verb::Disk)
    }

    /// Whether `--nemesis all` includes it; by default it does. A fault
    /// that breaks an assumption the system is entitled to (a node's
    /// durable state kept: `rollback`, `wipe`) is run only when named.
    fn in_all(&self) -> bool {
        true
    }

    /// What this machine must have for it on `runtime`, checked before
    /// the cluster starts.
    fn check_here(&self, _runtime: RuntimeKind) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whether it stops its targets' processes, so that one ending while
    /// it is in force (or within `judge::crashed::GRACE_S` of its end) is
    /// expected, not a crash: `kill`, `power`, `torn` (SIGKILLs through
    /// the runtime, never reported as exits anyway), `disk-error` (a node
    /// stops itself on a failed fsync), and a fault that fires a crash
    /// point. Every other exit of a node outside the run's teardown is an
    /// anomaly `crashed` (`run/crashes.rs`). By default, false.
    fn stops_process(&self) -> bool {
        false
    }

    /// Draws its targets and parameters from `rng` (asking the cluster
    /// what it must: the leader, the members). Records nothing and does
    /// nothing to the cluster. Every draw takes from `rng` in the same
    /// order for the same answers, so that a seed gives the same schedule.
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned>;

    /// Does a planned fault, recording its start (and what it observed)
    /// in the history.
    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active>;

    /// Holds it past the nemesis interval until its effect is reached
    /// (a lag fault: the leader compacted past its target); returns true
    /// when told to stop meanwhile. By default, nothing more.
    async fn hold(
        &self,
        _ctx: &Context,
        _active: &mut Active,
        _stop: &mut watch::Receiver<bool>,
    ) -> bool {
        false
    }

    /// Draws what healing will do, when that is drawn too (a membership
    /// fault's restoring change); by default nothing is.
    async fn draw_heal(
        &self,
        _ctx: &Context,
        _active: &Active,
        _rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Option<Planned>> {
        Ok(None)
    }

    /// Undoes it (with `healing` when [`draw_heal`](Self::draw_heal) drew
    /// one), recording its end.
    async fn heal(
        &self,
        ctx: &Context,
        active: Active,
        healing: Option<&Planned>,
    ) -> anyhow::Result<()>;

    /// The final heal on one node, whatever the nemesis left (the run
    /// also heals partitions, resumes and restarts every node, and heals
    /// every faultfs disk); by default nothing more.
    async fn teardown(&self, _rt: &mut AnyRuntime, _node: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
