//! The `torn` fault: a power loss (as `power.rs`) that keeps a seeded
//! prefix of each node's unsynced changes (faultfs's `torn SEED`), the
//! seed drawn with the fault; restarted at the heal on what was kept.

use crate::nemesis::context::Context;
use crate::nemesis::disk::{draw_power_loss, power_loss, restart_after_power_loss};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::Verb;
use crate::sut::{Ability, Sut, System};
use rand_chacha::ChaCha8Rng;

/// See the module doc.
pub struct Torn;

impl FaultPackage for Torn {
    fn name(&self) -> &'static str {
        "torn"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill, Verb::Disk]
    }

    /// SIGKILL (through the runtime) and a torn disk.
    fn stops_process(&self) -> bool {
        true
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        Ok(draw_power_loss(ctx, rng))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        power_loss(ctx, self.name(), planned, true).await
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        restart_after_power_loss(ctx, self.name(), &active).await
    }
}
