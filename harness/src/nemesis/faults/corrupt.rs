//! The `corrupt` fault: on one node or a minority (seeded), bits flipped
//! in, a region zeroed of, or a cut at the end of a durable file — a WAL
//! segment, the snapshot file or a block-store file — through faultfs's
//! `corrupt-pick`, with the node stopped (killed first) or running (a
//! bitflip it meets at its next read or start). The history records
//! each damage's file, offset, length and kind (`phase: "damage"`).
//!
//! At the heal each target is restarted and watched
//! (`nemesis/damage.rs`). ordeal-node must refuse damaged data: refuse to
//! start naming file and offset, or, when the damage looks like a torn
//! tail and is cut off, stop at the first heartbeat that proves it lost
//! acknowledged entries; it must never serve damaged data. A node that
//! refused is repaired as an operator would: its data put back from the
//! checkpoint taken just before the damage (stopped), or the bitflip
//! replayed, which undoes it (running); then restarted. Run only when
//! named (not in `all`): see [`Corrupt::in_all`].

use crate::nemesis::context::Context;
use crate::nemesis::damage::{
    answer_json, checkpoint, drop_checkpoint, repair_from, restart_and_watch, Fate,
};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use faultfs::{Command as FsCommand, CorruptKind, Corruption, Damage};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// See the module doc.
pub struct Corrupt;

/// The checkpoint of a stopped target's image before the damage.
const CHECKPOINT: &str = "ordeal-corrupt";

/// A drawn corruption.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// `one node` or `minority`.
    scope: String,
    /// The kind of file aimed at (ordeal-node: `wal`, `snapshot`,
    /// `blocks`; NATS: `stream`, `raft`, `meta`); another
    /// kind is damaged when the node has none of it yet.
    file: String,
    /// What is done to it.
    kind: CorruptKind,
    /// Whether the node is killed first (`stopped`) or keeps running.
    node: String,
    /// Target `i` picks its file and region from `seed + i`.
    seed: u64,
}

impl Plan {
    fn stopped(&self) -> bool {
        self.node == "stopped"
    }
}

/// What the heal needs: the plan and each target's damage (`None` when
/// it had no file to damage).
struct Undo {
    plan: Plan,
    damages: Vec<(String, Option<Corruption>)>,
}

impl FaultPackage for Corrupt {
    fn name(&self) -> &'static str {
        "corrupt"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill, Verb::Disk]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    /// A stopped target is killed before the damage, and a running one
    /// stops itself when it reads it: the fault's doing, not a crash.
    fn stops_process(&self) -> bool {
        true
    }

    /// Run only when named: a cut at the end of the newest log segment
    /// cannot be told from a torn write, the node recovers less than it
    /// persisted, and the raft checker reports that (rightly) as
    /// `Durability` (`docs/storage-faults.md`).
    fn in_all(&self) -> bool {
        false
    }

    /// One node or (half the time) the largest minority; the file, the
    /// kind and whether the node runs. A running node is given bitflips
    /// only, the one damage its repair can undo exactly.
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let members = ctx.members();
        let minority = ((members.len().saturating_sub(1)) / 2).max(1);
        let count = if rng.gen_bool(0.5) { 1 } else { minority };
        let targets: Vec<String> = members.choose_multiple(rng, count).cloned().collect();
        let files = ctx.probe.sut().durable_files();
        let Some(&(file, _)) = files.choose(rng) else {
            anyhow::bail!(
                "corrupt: {} names no durable file to damage",
                ctx.probe.sut().name()
            );
        };
        let running = rng.gen_bool(0.5);
        let kind = if running {
            CorruptKind::Bitflip
        } else {
            *CorruptKind::ALL.choose(rng).expect("kinds")
        };
        let plan = Plan {
            scope: if count == 1 { "one node" } else { "minority" }.into(),
            file: file.into(),
            kind,
            node: if running { "running" } else { "stopped" }.into(),
            seed: rng.gen(),
        };
        Ok(Planned::new(targets, plan))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let plan: Plan = planned.params(self.name())?;
        let targets = &planned.targets;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": targets, "scope": plan.scope, "file": plan.file,
                "kind": plan.kind, "node": plan.node}),
        );
        let mut damages = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if plan.stopped() {
                ctx.runtime.lock().await.kill(t).await?;
                checkpoint(ctx, t, CHECKPOINT).await?;
            }
            let seed = plan.seed.wrapping_add(i as u64);
            let damage = damage(ctx, t, &plan, seed).await?;
            let mut value = json!({"phase": "damage", "targets": [t], "node": plan.node});
            match &damage {
                Some(c) => value["damage"] = json!(c),
                None => value["damage"] = json!(null),
            }
            ctx.record(self.name(), value);
            damages.push((t.clone(), damage));
        }
        Ok(Active::new(targets.clone(), Undo { plan, damages }))
    }

    /// Each target restarted and watched; one that refused is repaired
    /// and restarted.
    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        let undo = active.undo::<Undo>().expect("corrupt's undo");
        let (plan, damages) = (undo.plan.clone(), std::mem::take(&mut undo.damages));
        let mut outcomes = serde_json::Map::new();
        for (node, damage) in &damages {
            let fate = restart_and_watch(ctx, self.name(), node).await?;
            outcomes.insert(node.clone(), json!(fate.word()));
            if fate == Fate::Refused {
                if plan.stopped() {
                    repair_from(ctx, self.name(), node, CHECKPOINT).await?;
                } else if let Some(c) = damage {
                    undo_bitflip(ctx, self.name(), node, c).await?;
                }
            }
            if plan.stopped() {
                drop_checkpoint(ctx, node, CHECKPOINT).await;
            }
        }
        ctx.record(
            self.name(),
            json!({"phase": "end", "targets": active.targets, "outcomes": outcomes}),
        );
        Ok(())
    }
}

/// Damages one of `node`'s files of the planned kind (another kind, in
/// the system's `durable_files` order, when it has none yet); `None` when it has no durable
/// file at all.
async fn damage(
    ctx: &Context,
    node: &str,
    plan: &Plan,
    seed: u64,
) -> anyhow::Result<Option<Corruption>> {
    let files = ctx.probe.sut().durable_files();
    let aimed = files.iter().filter(|f| f.0 == plan.file);
    let others = files.iter().filter(|f| f.0 != plan.file);
    let mut rt = ctx.runtime.lock().await;
    for (_, glob) in aimed.chain(others) {
        let command = FsCommand::CorruptPick {
            kind: plan.kind,
            glob: (*glob).into(),
            seed,
            length_max: None,
        };
        match rt.disk(node, command).await {
            Ok(answer) => return Ok(Some(serde_json::from_str(&answer)?)),
            Err(e) if format!("{e:#}").contains("no non-empty file") => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Undoes a bitflip by flipping the same bits again (the same seed over
/// the same region), the node stopped; then restarts it. A file removed
/// or cut since (compacted away) has nothing left to undo.
async fn undo_bitflip(
    ctx: &Context,
    fault: &'static str,
    node: &str,
    c: &Corruption,
) -> anyhow::Result<()> {
    let mut rt = ctx.runtime.lock().await;
    if let Err(e) = rt.kill(node).await {
        tracing::debug!(node, error = %e, "the node had already stopped");
    }
    let damage = Damage::Bitflip {
        offset: c.offset,
        length: c.length,
        seed: c.seed,
    };
    let command = FsCommand::Corrupt {
        path: c.path.clone(),
        damage,
    };
    let answer = match rt.disk(node, command).await {
        Ok(answer) => answer_json(&answer),
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    rt.restart(node).await?;
    ctx.record(
        fault,
        json!({"phase": "repair", "targets": [node], "replayed": "bitflip", "faultfs": answer}),
    );
    Ok(())
}
