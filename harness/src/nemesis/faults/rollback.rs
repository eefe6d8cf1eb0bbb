//! The `rollback` fault: one node's data directory replaced by a copy
//! taken earlier in the same run, as an operator restoring a stale backup
//! would (Fabric #3223). At the start faultfs checkpoints the node's
//! durable image while it runs (crash-consistent: what a power loss
//! then would have left); after the fault's interval the node is
//! killed, its image replaced by that checkpoint (faultfs `restore`,
//! `phase: "restore"`), and it is restarted.
//!
//! A rolled-back Raft node has forgotten the votes and entries it
//! acknowledged since: the textbook way to break Election Safety or lose
//! a committed entry with one node. ordeal-node cannot tell a rollback at
//! start (the image is one a crash could have left); it stops naming the
//! lost state when a leader's heartbeat commits past its log (the leader
//! knows what it acknowledged), and otherwise rejoins. The oracles judge
//! the rest: the raft checker's durability and vote rules see the
//! rollback itself, the ordering and linearizability checkers whether a
//! client lost an acknowledged write. At the heal a node that stopped is
//! repaired from a checkpoint of its newest image (taken just before the
//! restore) and restarted. Not in `all`: every run of it is invalid by
//! the raft checker's durability rule, which is the fault itself.

use crate::nemesis::context::{sleep_or_stop, Context};
use crate::nemesis::damage::{
    answer_json, checkpoint, drop_checkpoint, fatal_lines, record_fate, repair_from, Fate,
};
use crate::nemesis::one_node::{leader_or_other, Choice};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use faultfs::Command as FsCommand;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::watch;

/// See the module doc.
pub struct Rollback;

/// The earlier copy the node is rolled back to.
const EARLIER: &str = "ordeal-rollback-earlier";
/// The newest image, kept for the repair.
const NEWEST: &str = "ordeal-rollback-newest";

/// Whether the restore was done (the run may stop before it), and how
/// many fatal lines the node's log held before its restart.
struct Undo {
    restored: bool,
    fatal_before: usize,
}

impl FaultPackage for Rollback {
    fn name(&self) -> &'static str {
        "rollback"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill, Verb::Disk]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    /// The target is killed to restore its earlier image, and may stop
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

    /// The earlier copy, taken while the node runs.
    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let one = &planned.targets;
        let Choice { choice } = planned.params(self.name())?;
        let taken = checkpoint(ctx, &one[0], EARLIER).await?;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": one, "choice": choice, "checkpoint": taken}),
        );
        Ok(Active::new(
            one.clone(),
            Undo {
                restored: false,
                fatal_before: 0,
            },
        ))
    }

    /// After the interval: the node killed, rolled back, restarted, and
    /// given a moment to show how it fares before the heal.
    async fn hold(
        &self,
        ctx: &Context,
        active: &mut Active,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let node = active.targets[0].clone();
        let fatal_before = fatal_lines(ctx, &node).await.len();
        match roll_back(ctx, &node).await {
            Ok(()) => {
                if let Some(undo) = active.undo::<Undo>() {
                    undo.restored = true;
                    undo.fatal_before = fatal_before;
                }
            }
            Err(e) => tracing::warn!(node, error = %format!("{e:#}"), "rollback: not done"),
        }
        sleep_or_stop(stop, ctx.interval / 2).await
    }

    /// A node that stopped is repaired from its newest image.
    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        let node = active.targets[0].clone();
        let (restored, fatal_before) = active
            .undo::<Undo>()
            .map_or((false, 0), |u| (u.restored, u.fatal_before));
        let mut value = json!({"phase": "end", "targets": [node], "restored": restored});
        if restored {
            let fate = record_fate(ctx, self.name(), &node, fatal_before).await;
            if fate == Fate::Refused {
                repair_from(ctx, self.name(), &node, NEWEST).await?;
            }
            value["outcome"] = json!(fate.word());
            drop_checkpoint(ctx, &node, NEWEST).await;
        }
        drop_checkpoint(ctx, &node, EARLIER).await;
        ctx.record(self.name(), value);
        Ok(())
    }
}

/// Kills `node`, checkpoints its newest image, restores the earlier one
/// and restarts it; records the restore.
async fn roll_back(ctx: &Context, node: &str) -> anyhow::Result<()> {
    ctx.runtime.lock().await.kill(node).await?;
    checkpoint(ctx, node, NEWEST).await?;
    let mut rt = ctx.runtime.lock().await;
    let command = FsCommand::Restore {
        name: EARLIER.into(),
    };
    let answer = rt.disk(node, command).await?;
    ctx.record(
        "rollback",
        json!({"phase": "restore", "targets": [node], "faultfs": answer_json(&answer)}),
    );
    rt.restart(node).await
}
