//! The `wipe` fault: one node killed, its data directory emptied (after
//! faultfs checkpoints it: the operator's backup), and the node restarted
//! with its old id and command line, as an operator would (Fabric #3639:
//! a wiped orderer rejoining under its old identity panicked with
//! "tocommit out of range").
//!
//! ordeal-node cannot tell an emptied data directory from a new node's,
//! so it starts as a fresh founder. A leader that had it acknowledging
//! entries sends heartbeats committing past its empty log: the node then
//! stops, naming the lost state (instead of raft-rs's panic). Under a new
//! leader, which knows nothing of what it acknowledged, it rejoins by
//! snapshot or log under its old id, having forgotten its votes: the
//! hazard the oracles watch for. What ordeal-node supports for a lost
//! data directory is removing the node (`POST /members`) and adding a
//! fresh one (`--join`); the heal repairs a node that stopped from the
//! backup and restarts it. Not in `all`: the raft checker's durability
//! rule sees every wipe (`docs/storage-faults.md`).

use crate::nemesis::context::Context;
use crate::nemesis::damage::{
    checkpoint, drop_checkpoint, fatal_lines, record_fate, repair_from, Fate,
};
use crate::nemesis::one_node::{leader_or_other, Choice};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// See the module doc.
pub struct Wipe;

/// The operator's backup, taken as the node is wiped.
const BACKUP: &str = "ordeal-wipe-backup";

/// How many fatal lines the node's log held before its restart.
struct FatalBefore(usize);

impl FaultPackage for Wipe {
    fn name(&self) -> &'static str {
        "wipe"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill, Verb::Disk]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    /// The target is killed to empty its data directory, and may stop
    /// itself on the state it lost: the fault's doing, not a crash.
    fn stops_process(&self) -> bool {
        true
    }

    fn in_all(&self) -> bool {
        false
    }

    /// The leader half the time (its loss is the one no heartbeat
    /// proves), else any member.
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let (one, choice) = leader_or_other(ctx, rng).await;
        Ok(Planned::new(one, Choice { choice }))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let one = &planned.targets;
        let Choice { choice } = planned.params(self.name())?;
        let node = &one[0];
        let fatal_before = fatal_lines(ctx, node).await.len();
        ctx.runtime.lock().await.kill(node).await?;
        let backup = checkpoint(ctx, node, BACKUP).await?;
        let mut rt = ctx.runtime.lock().await;
        let emptied = rt.empty_disk(node).await?;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": one, "choice": choice, "removed": emptied,
                "backup": backup}),
        );
        rt.restart(node).await?;
        Ok(Active::new(one.clone(), FatalBefore(fatal_before)))
    }

    /// How the node fared; one that stopped is repaired from the backup.
    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        let node = active.targets[0].clone();
        let before = active.undo::<FatalBefore>().map_or(0, |f| f.0);
        let fate = record_fate(ctx, self.name(), &node, before).await;
        if fate == Fate::Refused {
            repair_from(ctx, self.name(), &node, BACKUP).await?;
        }
        drop_checkpoint(ctx, &node, BACKUP).await;
        ctx.record(
            self.name(),
            json!({"phase": "end", "targets": [node], "outcome": fate.word()}),
        );
        Ok(())
    }
}
