//! What the disk faults share (`faults/power.rs`, `torn.rs`,
//! `slow_disk.rs`, `disk_error.rs`): a power loss drawn and done on one
//! node or every node, a node restarted after it stopped on a disk error,
//! and the final heal of every disk. They reach a node's faultfs through
//! the runtime's `disk` verb (the mounts are `runtime/disk.rs`).

use crate::nemesis::context::Context;
use crate::nemesis::package::{Active, Planned};
use crate::runtime::verbs::Runtime;
use crate::runtime::AnyRuntime;
use faultfs::{Command as FsCommand, TailShape};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The tally of power losses so far in a run, power and torn together:
/// every other one takes every node.
const POWER_LOSSES: &str = "power losses";

/// One member drawn: the node of a one-node disk fault.
pub fn one_member(ctx: &Context, rng: &mut ChaCha8Rng) -> Vec<String> {
    vec![ctx.members().choose(rng).expect("nodes").clone()]
}

/// A power loss's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerLoss {
    /// `one node` or `every node` (the history's `scope`).
    pub scope: String,
    /// What a torn write keeps is drawn from this seed (a plain power
    /// loss draws it too, and keeps nothing unsynced).
    pub seed: u64,
}

/// Draws a power loss: one node, or (every other loss in the run, which
/// of the first two is seeded) every node, so that any two power faults
/// hold a correlated loss.
pub fn draw_power_loss(ctx: &Context, rng: &mut ChaCha8Rng) -> Planned {
    let nodes = ctx.members();
    let one = one_member(ctx, rng);
    let every = ctx.tallies.with(POWER_LOSSES, |losses| {
        if *losses == 0 {
            *losses = rng.gen_range(1..=2);
        }
        let every = *losses % 2 == 0 && nodes.len() > 1;
        *losses += 1;
        every
    });
    let targets = if every { nodes } else { one };
    let seed: u64 = rng.gen();
    let scope = if every { "every node" } else { "one node" };
    Planned::new(
        targets,
        PowerLoss {
            scope: scope.into(),
            seed,
        },
    )
}

/// Does a power loss, recording its start: SIGKILL every target, then
/// drop (`lose-unfsynced`) or, with `torn`, tear (`torn SEED`) what each
/// had not fsynced, recording faultfs's answer.
pub async fn power_loss(
    ctx: &Context,
    fault: &'static str,
    planned: &Planned,
    torn: bool,
) -> anyhow::Result<Active> {
    let params: PowerLoss = planned.params(fault)?;
    let targets = &planned.targets;
    let mut rt = ctx.runtime.lock().await;
    ctx.record(
        fault,
        json!({"phase": "start", "targets": targets, "scope": params.scope}),
    );
    for t in targets {
        rt.kill(t).await?;
    }
    for t in targets {
        let command = if torn {
            FsCommand::Torn {
                seed: Some(params.seed),
                tail: TailShape::Keep,
            }
        } else {
            FsCommand::LoseUnfsynced {
                tail: TailShape::Keep,
                seed: None,
            }
        };
        let answer = rt.disk(t, command).await?;
        ctx.record(
            fault,
            json!({"phase": "disk", "targets": [t], "faultfs": answer}),
        );
    }
    Ok(Active::new(targets.clone(), ()))
}

/// Undoes a power loss: its nodes restarted on what their disks kept.
pub async fn restart_after_power_loss(
    ctx: &Context,
    fault: &'static str,
    active: &Active,
) -> anyhow::Result<()> {
    {
        let mut rt = ctx.runtime.lock().await;
        for node in &active.targets {
            rt.restart(node).await?;
        }
    }
    ctx.record_end(fault, &active.targets);
    Ok(())
}

/// Restarts a node that may have stopped itself on a disk error: killed
/// (reaped, if it already ended), its unpersisted changes dropped, started.
pub async fn heal_stopped(rt: &mut AnyRuntime, node: &str) -> anyhow::Result<()> {
    if let Err(e) = rt.kill(node).await {
        tracing::debug!(node, error = %e, "the node had already stopped");
    }
    rt.disk(
        node,
        FsCommand::LoseUnfsynced {
            tail: TailShape::Keep,
            seed: None,
        },
    )
    .await?;
    rt.restart(node).await
}

/// The final heal of disk faults: every disk's delays and failures
/// removed, and every node that is not running (one stopped by a disk
/// error) restarted on what its disk kept.
pub async fn heal_all(rt: &mut AnyRuntime, nodes: &[String]) -> anyhow::Result<()> {
    for node in nodes {
        rt.disk(node, FsCommand::Heal).await?;
        if !rt.running(node).await {
            heal_stopped(rt, node).await?;
        }
    }
    Ok(())
}
