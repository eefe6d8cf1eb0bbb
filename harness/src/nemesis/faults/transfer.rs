//! The `transfer` fault: leadership moved to a follower drawn (seeded)
//! among the voters (`POST /transfer`, through `members.rs`), waited for
//! until it leads (bounded). Recorded at its start and its end at once;
//! the heal has nothing to undo.

use crate::nemesis::context::Context;
use crate::nemesis::members::{change_time, name, Members};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::Verb;
use crate::runtime::RuntimeKind;
use crate::sut::{Ability, Sut, System};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Instant;

/// See the module doc.
pub struct Transfer;

/// Where leadership was when the transfer was drawn.
#[derive(Debug, Serialize, Deserialize)]
struct Leading {
    from: String,
}

impl FaultPackage for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::MembershipApi)
    }

    /// Refused wherever the membership faults are (over ssh), though it
    /// starts no node: the two are driven together.
    fn refused_on(&self, runtime: RuntimeKind) -> Option<&'static str> {
        runtime.lacks(Verb::AddNode)
    }

    /// The follower that will lead; nothing to do when no leader answers
    /// or it has no follower.
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let nothing = Planned::new(Vec::new(), Value::Null);
        let members = Members::new(ctx, Instant::now() + change_time(ctx.interval))?;
        let Some((from, config)) = members.leader_until_deadline().await else {
            tracing::warn!("transfer: no leader answered; no transfer this round");
            return Ok(nothing);
        };
        let followers: Vec<u64> = config
            .voters
            .iter()
            .copied()
            .filter(|v| name(*v) != from)
            .collect();
        // Drawn as the other faults draw (a u32), so a schedule is stable.
        if followers.is_empty() {
            return Ok(nothing);
        }
        let to = name(followers[rng.gen_range(0..followers.len() as u32) as usize]);
        Ok(Planned::new(vec![to], Leading { from }))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let targets = planned.targets.clone();
        let Some(to) = targets.first() else {
            return Ok(Active::new(targets, ()));
        };
        let Leading { from } = planned.params(self.name())?;
        let members = Members::new(ctx, Instant::now() + change_time(ctx.interval))?;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": targets, "from": from}),
        );
        let (leader, outcome) = members.transfer(to).await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "transfer: leadership did not move");
        }
        ctx.record(
            self.name(),
            json!({"phase": "end", "targets": targets, "leader": leader}),
        );
        Ok(Active::new(targets, ()))
    }

    async fn heal(&self, _: &Context, _: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        Ok(())
    }
}
