//! The `kill` fault: SIGKILL one node (the leader half the time, see
//! `one_node.rs`), restarted at the heal on its data directory.

use crate::nemesis::context::Context;
use crate::nemesis::one_node;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::Verb;
use crate::sut::Sut;
use rand_chacha::ChaCha8Rng;

/// See the module doc.
pub struct Kill;

impl FaultPackage for Kill {
    fn name(&self) -> &'static str {
        "kill"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill]
    }

    /// SIGKILL (through the runtime).
    fn stops_process(&self) -> bool {
        true
    }

    fn refused_by(&self, _sut: Sut) -> Option<&'static str> {
        None
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        Ok(one_node::draw(ctx, rng).await)
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        one_node::inject(ctx, self.name(), planned, Verb::Kill).await
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        one_node::heal(ctx, self.name(), &active, Verb::Kill).await
    }
}
