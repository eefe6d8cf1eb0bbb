//! What kill and pause share: one node drawn (Jepsen's primaries: the
//! leader half the time; with `--aim-uncommitted-tail`, set by the soak
//! when its Raft coverage shows few restarts with an uncommitted tail, the
//! other half prefers a node whose status shows entries beyond its commit
//! index), and a verb pair done to it and undone.

use crate::cluster::probe::uncommitted_tails;
use crate::nemesis::context::Context;
use crate::nemesis::package::{Active, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Which node was taken (the history's `choice`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Choice {
    /// `leader`, `uncommitted_tail` or `random`.
    pub choice: String,
}

/// One node: the leader half the time, else, when aiming, a node holding
/// an uncommitted tail, else any member; and which of the three it is
/// (`leader`, `uncommitted_tail`, `random`: the history's `choice`).
/// Without aiming the draws are what they always were.
pub async fn leader_or_other(ctx: &Context, rng: &mut ChaCha8Rng) -> (Vec<String>, String) {
    if rng.gen_bool(0.5) {
        if let Some(leader) = ctx.leader().await {
            return (vec![leader], "leader".into());
        }
    }
    if ctx.aim_uncommitted_tail {
        let holding = uncommitted_tails(&ctx.probe.statuses().await);
        if let Some(node) = holding.choose(rng) {
            return (vec![node.clone()], "uncommitted_tail".into());
        }
    }
    let members = ctx.members();
    (
        vec![members.choose(rng).expect("a member").clone()],
        "random".into(),
    )
}

/// Draws one node ([`leader_or_other`]).
pub async fn draw(ctx: &Context, rng: &mut ChaCha8Rng) -> Planned {
    let (targets, choice) = leader_or_other(ctx, rng).await;
    Planned::new(targets, Choice { choice })
}

/// Records the fault's start (with its choice), then does `verb` (kill
/// or pause) to each target.
pub async fn inject(
    ctx: &Context,
    fault: &'static str,
    planned: &Planned,
    verb: Verb,
) -> anyhow::Result<Active> {
    let Choice { choice } = planned.params(fault)?;
    let targets = &planned.targets;
    ctx.record(
        fault,
        json!({"phase": "start", "targets": targets, "choice": choice}),
    );
    for t in targets {
        let mut rt = ctx.runtime.lock().await;
        match verb {
            Verb::Kill => rt.kill(t).await?,
            Verb::Pause => rt.pause(t).await?,
            other => anyhow::bail!("{fault}: {other:?} is not done to one node here"),
        }
    }
    Ok(Active::new(targets.clone(), ()))
}

/// Undoes `verb` on each target (restart, resume), then records the end.
pub async fn heal(
    ctx: &Context,
    fault: &'static str,
    active: &Active,
    verb: Verb,
) -> anyhow::Result<()> {
    {
        let mut rt = ctx.runtime.lock().await;
        for node in &active.targets {
            match verb {
                Verb::Kill => rt.restart(node).await?,
                Verb::Pause => rt.resume(node).await?,
                other => anyhow::bail!("{fault}: {other:?} is not undone on one node here"),
            }
        }
    }
    ctx.record_end(fault, &active.targets);
    Ok(())
}
