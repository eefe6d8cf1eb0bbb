//! The `power` fault: SIGKILL and `lose-unfsynced` on faultfs, one node
//! or (every other power loss) every node at once; restarted at the heal
//! on what the disks kept.

use crate::nemesis::context::Context;
use crate::nemesis::disk::{draw_power_loss, power_loss, restart_after_power_loss};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::Verb;
use crate::sut::{Ability, Sut, System};
use rand_chacha::ChaCha8Rng;

/// See the module doc.
pub struct Power;

impl FaultPackage for Power {
    fn name(&self) -> &'static str {
        "power"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill, Verb::Disk]
    }

    /// SIGKILL (through the runtime) and the disk's unsynced writes lost.
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
        power_loss(ctx, self.name(), planned, false).await
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        restart_after_power_loss(ctx, self.name(), &active).await
    }
}
