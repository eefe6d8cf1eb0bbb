//! The `lag` fault: one follower cut off from every other node and held
//! there until the leader has compacted its log past it, so that after the
//! heal it can only catch up by installing the leader's snapshot (issue
//! 13). The cut is a partition (`grudge::isolate`), undone by the
//! runtime's `heal` like any other.

use crate::nemesis::context::{sleep_or_stop, Context};
use crate::nemesis::grudge;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Leader compactions to wait for after the cut: the first snapshot taken
/// after the cut may still leave the follower within the catch-up margin;
/// the second is a whole snapshot interval past it.
pub const LAG_COMPACTIONS: u64 = 2;
/// Entries the leader must have applied past the follower's applied index
/// at the cut. Over TCP that only drops packets (Docker's nft rules), the
/// leader's appends sent before its in-flight window filled (the node's
/// `max_inflight_msgs`, 256 messages, about one entry each) are
/// retransmitted after the heal; only what lies past them must come by
/// snapshot.
pub const LAG_ENTRIES_PAST: u64 = 300;
/// How much longer than the nemesis interval a lag may be held waiting for
/// those compactions (a leader under little load compacts slowly).
pub const LAG_HOLD_EXTRA_MAX: Duration = Duration::from_secs(60);
/// How often the leader's counters are read while holding.
const LAG_POLL_PERIOD: Duration = Duration::from_millis(250);

/// See the module doc.
pub struct Lag;

/// Whom the draw found leading, and so which follower it cut.
#[derive(Debug, Serialize, Deserialize)]
struct Drawn {
    /// The leader and its `compactions` counter, when one answered.
    leader: Option<String>,
    leader_compactions: Option<u64>,
    /// `follower`, or `random` when no leader was known.
    choice: String,
}

/// A follower cut off, and where the leader and it were when it was.
#[derive(Debug)]
struct Lagging {
    /// The follower cut off.
    target: String,
    /// The leader when the cut began and its `compactions` counter then.
    baseline: Option<(String, u64)>,
    /// The follower's applied index at the cut (0 when it did not say).
    applied_index: u64,
}

/// The leader most nodes name, with its status.
fn leader_of(statuses: &BTreeMap<String, Value>) -> Option<(String, &Value)> {
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for s in statuses.values() {
        if let Some(l) = s["leader"].as_u64().filter(|&l| l != 0) {
            *votes.entry(l).or_default() += 1;
        }
    }
    let (id, _) = votes.into_iter().max_by_key(|(_, n)| *n)?;
    let name = format!("n{id}");
    let status = statuses.get(&name)?;
    Some((name, status))
}

/// The leader, its compactions counter and applied index, when a leader
/// answers.
async fn leader_compactions(ctx: &Context) -> Option<(String, u64, u64)> {
    let members = ctx.members();
    let mut statuses = ctx.probe.statuses().await;
    statuses.retain(|node, _| members.contains(node));
    let (leader, status) = leader_of(&statuses)?;
    let applied = status["applied_index"].as_u64().unwrap_or(0);
    Some((leader, status["compactions"].as_u64()?, applied))
}

impl FaultPackage for Lag {
    fn name(&self) -> &'static str {
        "lag"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Partition]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::SnapshotCatchUp)
    }

    /// A follower drawn (seeded) among the nodes that are not the leader
    /// (any node when no leader is known).
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let baseline = leader_compactions(ctx)
            .await
            .map(|(leader, compactions, _)| (leader, compactions));
        let leader = baseline.as_ref().map(|(l, _)| l.clone());
        let members = ctx.members();
        let followers: Vec<&String> = members
            .iter()
            .filter(|n| Some(*n) != leader.as_ref())
            .collect();
        let target = match followers.choose(rng) {
            Some(t) => (*t).clone(),
            None => members.choose(rng).expect("a member").clone(),
        };
        let drawn = Drawn {
            choice: if leader.is_some() {
                "follower"
            } else {
                "random"
            }
            .into(),
            leader,
            leader_compactions: baseline.as_ref().map(|(_, c)| *c),
        };
        Ok(Planned::new(vec![target], drawn))
    }

    /// Cuts the follower off, recorded at its start with its applied index.
    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let drawn: Drawn = planned.params(self.name())?;
        let target = planned.targets[0].clone();
        let applied_index = ctx
            .probe
            .status(&target)
            .await
            .and_then(|s| s["applied_index"].as_u64())
            .unwrap_or(0);
        let g = grudge::isolate(&target, &ctx.members());
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": [target], "grudge": g, "leader": drawn.leader,
                   "choice": drawn.choice,
                   "leader_compactions": drawn.leader_compactions,
                   "applied_index": applied_index}),
        );
        ctx.runtime.lock().await.partition(&g).await?;
        let lagging = Lagging {
            target: target.clone(),
            baseline: drawn.leader.zip(drawn.leader_compactions),
            applied_index,
        };
        Ok(Active::new(vec![target], lagging))
    }

    async fn hold(
        &self,
        ctx: &Context,
        active: &mut Active,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        match active.undo::<Lagging>() {
            Some(lagging) => hold(ctx, lagging, stop).await,
            None => false,
        }
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        ctx.runtime.lock().await.heal().await?;
        ctx.record_end(self.name(), &active.targets);
        Ok(())
    }
}

/// Holds the cut, after the nemesis interval, until the leader has
/// compacted [`LAG_COMPACTIONS`] times since it began and applied
/// [`LAG_ENTRIES_PAST`] entries past the follower (at most
/// [`LAG_HOLD_EXTRA_MAX`] more), and records a `compacted` event saying
/// whether it did. A new leader's counter is taken as its own baseline.
/// Returns true when told to stop meanwhile.
async fn hold(ctx: &Context, lagging: &mut Lagging, stop: &mut watch::Receiver<bool>) -> bool {
    let started = Instant::now();
    let mut compacted = None;
    let mut stopped = false;
    while started.elapsed() < LAG_HOLD_EXTRA_MAX {
        if let Some((leader, now, applied)) = leader_compactions(ctx).await {
            match &lagging.baseline {
                Some((l, at)) if *l == leader => {
                    if now >= at + LAG_COMPACTIONS
                        && applied >= lagging.applied_index + LAG_ENTRIES_PAST
                    {
                        compacted = Some((leader, now, now - at));
                        break;
                    }
                }
                _ => lagging.baseline = Some((leader, now)),
            }
        }
        if sleep_or_stop(stop, LAG_POLL_PERIOD).await {
            stopped = true;
            break;
        }
    }
    ctx.record(
        "lag",
        json!({"phase": "compacted", "targets": [lagging.target],
               "compacted": compacted.is_some(),
               "leader": compacted.as_ref().map(|(l, _, _)| l),
               "leader_compactions": compacted.as_ref().map(|(_, n, _)| n),
               "compactions_during_lag": compacted.as_ref().map(|(_, _, d)| d),
               "held_extra_s": started.elapsed().as_secs_f64()}),
    );
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_the_one_most_nodes_name_and_must_answer() {
        let s = |leader: u64, c: u64| json!({"leader": leader, "compactions": c});
        let mut statuses = BTreeMap::new();
        statuses.insert("n1".to_string(), s(2, 1));
        statuses.insert("n2".to_string(), s(2, 7));
        statuses.insert("n3".to_string(), s(2, 0));
        let (name, status) = leader_of(&statuses).unwrap();
        assert_eq!(
            (name.as_str(), status["compactions"].as_u64()),
            ("n2", Some(7))
        );
        statuses.remove("n2");
        assert!(
            leader_of(&statuses).is_none(),
            "a leader that does not answer is no baseline"
        );
    }
}
