//! What the faults that damage or replace a node's durable state share
//! (`faults/corrupt.rs`, `rollback.rs`, `wipe.rs`): a faultfs checkpoint
//! named per fault, a node restarted and watched until it runs on or
//! refuses, the reason it gave (the last error line of its log), and the
//! operator's repair of a node that refused: its data put back from the
//! checkpoint (killed first: a refusing node may still be exiting), then
//! a restart. `docs/storage-faults.md` says what
//! ordeal-node must do under each fault.

use crate::nemesis::context::Context;
use crate::runtime::verbs::Runtime;
use faultfs::Command as FsCommand;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a node restarted on damaged or lost state is watched: its
/// recovery, an election timeout and a leader's heartbeats fit in it
/// (a refusal comes at recovery, or at the first heartbeat).
pub const WATCH: Duration = Duration::from_secs(5);
/// How often a watched node is asked whether it runs.
const WATCH_POLL: Duration = Duration::from_millis(100);
/// How much of a refusing node's last error line the history keeps.
const REASON_CHARS_MAX: usize = 400;

/// A faultfs answer as JSON (a string when it is not JSON, `null` when
/// empty), for the history.
pub fn answer_json(answer: &str) -> Value {
    if answer.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(answer).unwrap_or_else(|_| json!(answer))
}

/// Takes the faultfs checkpoint `name` of `node`'s durable image; returns
/// faultfs's answer.
pub async fn checkpoint(ctx: &Context, node: &str, name: &str) -> anyhow::Result<Value> {
    let mut rt = ctx.runtime.lock().await;
    let command = FsCommand::Checkpoint { name: name.into() };
    Ok(answer_json(&rt.disk(node, command).await?))
}

/// Drops the checkpoint `name` of `node` (a warning when it fails: one
/// left behind goes with the run's work directory).
pub async fn drop_checkpoint(ctx: &Context, node: &str, name: &str) {
    let mut rt = ctx.runtime.lock().await;
    let command = FsCommand::DropCheckpoint { name: name.into() };
    if let Err(e) = rt.disk(node, command).await {
        tracing::warn!(node, checkpoint = name, error = %e, "dropping a checkpoint");
    }
}

/// Watches `node` for up to [`WATCH`]: true when it still runs at the
/// end, false as soon as it has stopped.
pub async fn stays_up(ctx: &Context, node: &str) -> bool {
    let deadline = Instant::now() + WATCH;
    while Instant::now() < deadline {
        if !ctx.runtime.lock().await.running(node).await {
            return false;
        }
        tokio::time::sleep(WATCH_POLL).await;
    }
    ctx.runtime.lock().await.running(node).await
}

/// The line ordeal-node logs as soon as its raft loop ends, before the
/// process exits (which waits for its client connections to close).
const LOOP_STOPPED: &str = "the raft loop stopped";

/// Whether a line of a node's log says it stopped: its raft loop ended,
/// its fatal error (what `main` prints as it exits: `ordeal-node:
/// error: …`), or a panic.
fn fatal(line: &str) -> bool {
    line.contains(LOOP_STOPPED) || line.contains(": error:") || line.contains("panicked")
}

/// The reason among a start's fatal lines: the fatal error when it was
/// printed, else the first.
fn reason(lines: &[String]) -> Option<&String> {
    lines
        .iter()
        .find(|l| !l.contains(LOOP_STOPPED))
        .or(lines.first())
}

/// The fatal lines of `node`'s log (every start's), in order; empty when
/// the log cannot be read.
pub async fn fatal_lines(ctx: &Context, node: &str) -> Vec<String> {
    let Ok(dir) = tempfile::tempdir() else {
        return Vec::new();
    };
    let path = dir.path().join("node.log");
    let collected = ctx.runtime.lock().await.collect_log(node, &path).await;
    if collected.is_err() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| fatal(l))
        .map(|l| l.chars().take(REASON_CHARS_MAX).collect())
        .collect()
}

/// [`fatal_lines`], waiting up to [`WATCH`] more for the fatal error of a
/// node whose raft loop stopped since `fatal_before` lines but whose
/// process has not printed why yet (it exits once its client connections
/// close).
async fn fatal_error_lines(ctx: &Context, node: &str, fatal_before: usize) -> Vec<String> {
    let deadline = Instant::now() + WATCH;
    loop {
        let lines = fatal_lines(ctx, node).await;
        let since = lines.get(fatal_before..).unwrap_or_default();
        let explained = since.iter().any(|l| !l.contains(LOOP_STOPPED));
        if since.is_empty() || explained || Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(WATCH_POLL * 5).await;
    }
}

/// How a node restarted on damaged or lost state fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It ran on for [`WATCH`] (recovered, cut a torn tail, or rejoined).
    Runs,
    /// It stopped (refused to start, or stopped at a leader's heartbeat).
    Refused,
}

impl Fate {
    /// The history's word.
    pub fn word(self) -> &'static str {
        match self {
            Fate::Runs => "runs",
            Fate::Refused => "refused",
        }
    }
}

/// Records how `node` fared after it was started on damaged or lost
/// state (`phase: "outcome"`, with its refusal's reason), and returns it.
/// `fatal_before` is how many fatal lines its log held before that start:
/// one more means it refused even if its process is still exiting (a
/// stopping node may take seconds to end).
pub async fn record_fate(
    ctx: &Context,
    fault: &'static str,
    node: &str,
    fatal_before: usize,
) -> Fate {
    let up = stays_up(ctx, node).await;
    let fatal = fatal_error_lines(ctx, node, fatal_before).await;
    let fate = if up && fatal.len() <= fatal_before {
        Fate::Runs
    } else {
        Fate::Refused
    };
    let mut value = json!({"phase": "outcome", "targets": [node], "outcome": fate.word()});
    if fate == Fate::Refused {
        let since = fatal.get(fatal_before..).unwrap_or_default();
        value["reason"] = json!(reason(since).or(fatal.last()));
        value["exited"] = json!(!up);
    }
    ctx.record(fault, value);
    fate
}

/// Restarts `node` (killed first if it runs) and records how it fared.
pub async fn restart_and_watch(
    ctx: &Context,
    fault: &'static str,
    node: &str,
) -> anyhow::Result<Fate> {
    let fatal_before = fatal_lines(ctx, node).await.len();
    {
        let mut rt = ctx.runtime.lock().await;
        if let Err(e) = rt.kill(node).await {
            tracing::debug!(node, error = %e, "the node had already stopped");
        }
        rt.restart(node).await?;
    }
    Ok(record_fate(ctx, fault, node, fatal_before).await)
}

/// The operator's repair of a node that refused: stopped, its durable
/// image replaced by the checkpoint `name`, restarted; recorded as
/// `phase: "repair"` with faultfs's answer.
pub async fn repair_from(
    ctx: &Context,
    fault: &'static str,
    node: &str,
    name: &str,
) -> anyhow::Result<()> {
    let mut rt = ctx.runtime.lock().await;
    if let Err(e) = rt.kill(node).await {
        tracing::debug!(node, error = %e, "the node had already stopped");
    }
    let answer = rt
        .disk(node, FsCommand::Restore { name: name.into() })
        .await?;
    rt.restart(node).await?;
    ctx.record(
        fault,
        json!({"phase": "repair", "targets": [node], "restored": name,
            "faultfs": answer_json(&answer)}),
    );
    Ok(())
}
