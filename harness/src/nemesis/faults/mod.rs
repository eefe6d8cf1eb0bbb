//! The registry of faults: one line each in [`registry!`] below, one file
//! each in this folder implementing
//! [`FaultPackage`](crate::nemesis::package::FaultPackage). The order of
//! the lines is the order the plan keeps faults in (and so the test's
//! name, and the rounds' seeded draws): a new fault goes last.
//!
//! Adding a fault: its file here, and its line below (`Variant => module::Type`).

pub mod clock;
pub mod corrupt;
pub mod crash;
pub mod disk_error;
pub mod disk_full;
pub mod kill;
pub mod lag;
pub mod member;
pub mod partition;
pub mod pause;
pub mod power;
pub mod rollback;
pub mod slow_disk;
pub mod torn;
pub mod transfer;
pub mod wipe;

use crate::nemesis::context::Context;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::Verb;
use crate::runtime::{AnyRuntime, RuntimeKind};
use crate::sut::Sut;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

/// Declares [`Fault`] (one variant per line, in this order) and forwards
/// every [`FaultPackage`] method of a variant to its type.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident => $package:expr),* $(,)?) => {
        /// A fault the nemesis can inject, named in `--nemesis`; ordered as
        /// the registry lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Fault {
            $($(#[$doc])* $variant),*
        }

        impl Fault {
            /// Every fault, in registry order (`--nemesis all`).
            pub const ALL: &'static [Fault] = &[$(Fault::$variant),*];
        }

        impl FaultPackage for Fault {
            fn name(&self) -> &'static str {
                match self { $(Fault::$variant => $package.name()),* }
            }
            fn verbs(&self) -> &'static [Verb] {
                match self { $(Fault::$variant => $package.verbs()),* }
            }
            fn refused_by(&self, sut: Sut) -> Option<&'static str> {
                match self { $(Fault::$variant => $package.refused_by(sut)),* }
            }
            fn refused_on(&self, runtime: RuntimeKind) -> Option<&'static str> {
                match self { $(Fault::$variant => $package.refused_on(runtime)),* }
            }
            fn needs_faultfs(&self) -> bool {
                match self { $(Fault::$variant => $package.needs_faultfs()),* }
            }
            fn in_all(&self) -> bool {
                match self { $(Fault::$variant => $package.in_all()),* }
            }
            fn check_here(&self, runtime: RuntimeKind) -> anyhow::Result<()> {
                match self { $(Fault::$variant => $package.check_here(runtime)),* }
            }
            fn stops_process(&self) -> bool {
                match self { $(Fault::$variant => $package.stops_process()),* }
            }
            async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
                match self { $(Fault::$variant => $package.draw(ctx, rng).await),* }
            }
            async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
                match self { $(Fault::$variant => $package.inject(ctx, planned).await),* }
            }
            async fn hold(
                &self,
                ctx: &Context,
                active: &mut Active,
                stop: &mut watch::Receiver<bool>,
            ) -> bool {
                match self { $(Fault::$variant => $package.hold(ctx, active, stop).await),* }
            }
            async fn draw_heal(
                &self,
                ctx: &Context,
                active: &Active,
                rng: &mut ChaCha8Rng,
            ) -> anyhow::Result<Option<Planned>> {
                match self { $(Fault::$variant => $package.draw_heal(ctx, active, rng).await),* }
            }
            async fn heal(
                &self,
                ctx: &Context,
                active: Active,
                healing: Option<&Planned>,
            ) -> anyhow::Result<()> {
                match self { $(Fault::$variant => $package.heal(ctx, active, healing).await),* }
            }
            async fn teardown(&self, rt: &mut AnyRuntime, node: &str) -> anyhow::Result<()> {
                match self { $(Fault::$variant => $package.teardown(rt, node).await),* }
            }
        }
    };
}

registry! {
    /// SIGKILL and restart.
    Kill => kill::Kill,
    /// SIGSTOP and SIGCONT.
    Pause => pause::Pause,
    /// Network partitions by grudge.
    Partition => partition::Partition,
    /// Clock bumps, strobes and rate changes through libfaketime.
    Clock => clock::Clock,
    /// A follower cut off until the leader has compacted past it.
    Lag => lag::Lag,
    /// SIGKILL and `lose-unfsynced` on faultfs, one node or every node.
    Power => power::Power,
    /// The same with `torn`: a seeded prefix of the unsynced changes kept.
    Torn => torn::Torn,
    /// fsync delayed past half the election timeout on one node.
    SlowDisk => slow_disk::SlowDisk,
    /// fsync fails with EIO on one node.
    DiskError => disk_error::DiskError,
    /// Consenter-set changes: remove, add, remove the leader, replace.
    Member => member::Member,
    /// Leadership moved to a chosen follower.
    Transfer => transfer::Transfer,
    /// A seeded crash point armed on one node, fired, the node restarted.
    Crash => crash::Crash,
    /// Bitflips, zeroes or a cut in a durable file of one node or a
    /// minority (named only).
    Corrupt => corrupt::Corrupt,
    /// A node's data directory replaced by an earlier copy (named only).
    Rollback => rollback::Rollback,
    /// A node's data directory emptied, the node restarted (named only).
    Wipe => wipe::Wipe,
    /// A node's disk full (ENOSPC) for the fault's length.
    DiskFull => disk_full::DiskFull,
}

impl Fault {
    /// The fault named `word` in `--nemesis`, if any.
    pub fn from_name(word: &str) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.name() == word)
    }

    /// The faults `--nemesis all` names, in registry order.
    pub fn all() -> Vec<Fault> {
        Fault::ALL.iter().copied().filter(|f| f.in_all()).collect()
    }

    /// Every fault's name, in registry order.
    pub fn names() -> Vec<&'static str> {
        Fault::ALL.iter().map(|f| f.name()).collect()
    }
}

impl serde::Serialize for Fault {
    /// As its name (`test.json`'s `nemesis`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_keeps_the_plan_s_order_and_unique_names() {
        assert_eq!(
            Fault::names(),
            [
                "kill",
                "pause",
                "partition",
                "clock",
                "lag",
                "power",
                "torn",
                "slow-disk",
                "disk-error",
                "member",
                "transfer",
                "crash",
                "corrupt",
                "rollback",
                "wipe",
                "disk-full"
            ]
        );
        let mut sorted = Fault::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Fault::ALL, "Ord is the registry's order");
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(*f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        let disk: Vec<&str> = Fault::ALL
            .iter()
            .filter(|f| f.needs_faultfs())
            .map(|f| f.name())
            .collect();
        assert_eq!(
            disk,
            [
                "power",
                "torn",
                "slow-disk",
                "disk-error",
                "corrupt",
                "rollback",
                "wipe",
                "disk-full"
            ]
        );
        let named_only: Vec<&str> = Fault::ALL
            .iter()
            .filter(|f| !Fault::all().contains(f))
            .map(|f| f.name())
            .collect();
        assert_eq!(named_only, ["corrupt", "rollback", "wipe"]);
    }
}
