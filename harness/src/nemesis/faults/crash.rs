//! The `crash` fault (issue 29): a crash point (docs/crash-points.md)
//! armed on one node (the leader half the time, `one_node.rs`) through
//! `POST /crash-points`, to abort the process when the workload drives it
//! there (as a SIGKILL at that instant, between two particular writes);
//! the heal restarts it on its data directory.
//!
//! The point is drawn among those `--crash-prefer` names (set by a
//! steered soak for points no run reached), else among those the target
//! has reached in its present process (its `GET /crash-points`; the whole
//! catalogue when it does not answer), so that the cluster, in this configuration, drives it there
//! again, and the hit (1 to 3, counted from the arming) with it. Held
//! until the node exits or one more interval passes; a point that did
//! not fire is disarmed at the heal. The history records the point, the
//! target, and at the end whether it fired: confirmed by the trace's
//! `crash_point` event, the last line an aborted process writes (an exit
//! without it is recorded as one, `last_event`, for the checkers).

use crate::nemesis::context::{sleep_or_stop, Context};
use crate::nemesis::one_node;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use node::crash_points::Point;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the hold looks whether the target has exited.
const EXIT_POLL: Duration = Duration::from_millis(100);
/// Hits a drawn arming waits for, at most.
const HIT_MAX: u64 = 3;

/// See the module doc.
pub struct Crash;

/// What is armed where (the history's start event).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Arming {
    /// `leader`, `uncommitted_tail` or `random` (`one_node.rs`).
    choice: String,
    /// The crash point's name.
    point: String,
    /// Which hit after the arming fires.
    hit: u64,
}

impl FaultPackage for Crash {
    fn name(&self) -> &'static str {
        "crash"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Kill]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::CrashPoints)
    }

    /// A fired point aborts the target's process: its exit is this
    /// fault's doing, not a crash of the node (`judge/crashed.rs`).
    fn stops_process(&self) -> bool {
        true
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let (targets, choice) = one_node::leader_or_other(ctx, rng).await;
        let names: Vec<String> = if !ctx.crash_prefer.is_empty() {
            ctx.crash_prefer.clone()
        } else {
            let reached = reached_points(ctx, &targets[0]).await;
            if reached.is_empty() {
                Point::ALL.iter().map(|p| p.name().to_string()).collect()
            } else {
                reached
            }
        };
        let point = names.choose(rng).expect("a crash point").clone();
        let hit = rng.gen_range(1..=HIT_MAX);
        Ok(Planned::new(targets, Arming { choice, point, hit }))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let arming: Arming = planned.params(self.name())?;
        let target = planned.targets[0].clone();
        let body = json!({"name": arming.point, "action": "abort", "hit": arming.hit});
        let answer = ctx
            .probe
            .send_json(Method::POST, &target, "/crash-points", Some(&body))
            .await;
        let armed = matches!(answer, Ok((200, _)));
        if !armed {
            tracing::warn!(node = %target, point = %arming.point, ?answer, "crash: the point was not armed");
        }
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": [target], "choice": arming.choice,
                   "point": arming.point, "hit": arming.hit, "armed": armed}),
        );
        Ok(Active::new(vec![target], arming))
    }

    /// Holds until the target has exited, one more interval at most.
    async fn hold(
        &self,
        ctx: &Context,
        active: &mut Active,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let started = Instant::now();
        while started.elapsed() < ctx.interval {
            if !ctx.runtime.lock().await.running(&active.targets[0]).await {
                return false;
            }
            if sleep_or_stop(stop, EXIT_POLL).await {
                return true;
            }
        }
        false
    }

    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        let point = match active.undo::<Arming>() {
            Some(arming) => arming.point.clone(),
            None => anyhow::bail!("crash: the fault in force lost its arming"),
        };
        let target = active.targets[0].clone();
        let mut rt = ctx.runtime.lock().await;
        let end = if rt.running(&target).await {
            let path = format!("/crash-points/{point}");
            let answer = ctx
                .probe
                .send_json(Method::DELETE, &target, &path, None)
                .await;
            json!({"fired": false, "disarmed": matches!(answer, Ok((200, _)))})
        } else {
            let last = last_trace_event(&mut rt, &target).await;
            let fired = last["ev"] == "crash_point" && last["name"] == point.as_str();
            if !fired {
                tracing::warn!(node = %target, %point, %last, "crash: the node exited, not at the point armed");
            }
            if let Err(e) = rt.kill(&target).await {
                tracing::debug!(node = %target, error = %e, "the node had already stopped");
            }
            rt.restart(&target).await?;
            json!({"fired": fired, "exited": true, "last_event": if fired { Value::Null } else { last }})
        };
        drop(rt);
        let mut value = json!({"phase": "end", "targets": [target], "point": point});
        value
            .as_object_mut()
            .expect("an object")
            .extend(end.as_object().expect("an object").clone());
        ctx.record(self.name(), value);
        Ok(())
    }
}

/// The points a node has reached in its present process, in the
/// catalogue's order; empty when it does not answer.
async fn reached_points(ctx: &Context, node: &str) -> Vec<String> {
    let Some(list) = ctx.probe.get_json(node, "/crash-points").await else {
        return Vec::new();
    };
    list["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["reached"].as_u64().unwrap_or(0) > 0)
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// The last event of a node's Raft trace (`null` when it cannot be read).
async fn last_trace_event(rt: &mut crate::runtime::AnyRuntime, node: &str) -> Value {
    let Ok(dir) = tempfile::tempdir() else {
        return Value::Null;
    };
    let copy = dir.path().join("trace.jsonl");
    if let Err(e) = rt.collect_trace(node, &copy).await {
        tracing::warn!(node, error = %e, "crash: the trace could not be read");
        return Value::Null;
    }
    let text = tail(&copy).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// A file's last 64 KiB as text (its last lines whole but the first).
fn tail(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
