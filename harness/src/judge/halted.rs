//! The `halted` checker: a node that says it was removed from the
//! configuration (`/status` `removed: true`: it halts, answers 410) while
//! the history's committed configuration still names it as a voter or a
//! learner. Nothing else sees this: a halted node keeps replicating, so
//! its chain and its height look healthy to the ordering and catch-up
//! checkers, and its 410s are definite failures the ordering checker
//! allows. Issue 25 item 1 (a joining node that replays a configuration
//! from before it was added and halts) is this shape.
//!
//! A removal the history records ends a moment after the removed node
//! applies it, so a sample counts only when the node is still a member
//! [`GRACE_S`] after it.

use checker::verdict::{Anomaly, CheckResult};
use reports::members::{standing_at, ConfigChange};
use reports::status::{self, Sample};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The checker's name in `results.json`.
pub const CHECKER: &str = "halted";
/// The anomaly's kind.
pub const KIND: &str = "halted-member";
/// How long after a node first reports itself removed the history must
/// still name it as a member (the `member` fault records a removal's end
/// once it sees the change committed).
pub const GRACE_S: f64 = 3.0;

/// Judges the run in `run_dir`; `None` without `status.jsonl` (a system
/// whose status has no `removed`, or a history judged alone).
pub fn check(run_dir: &Path) -> anyhow::Result<Option<CheckResult>> {
    let started = Instant::now();
    let path = run_dir.join("status.jsonl");
    if !path.exists() {
        return Ok(None);
    }
    let samples = status::read(&path);
    let history = run_dir.join("history.jsonl");
    let loaded = reports::load::history(&history)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", history.display()))?;
    Ok(Some(judge(&samples, &loaded.changes, started)))
}

/// The verdict over `samples` against the configuration `changes` record.
fn judge(samples: &[Sample], changes: &[ConfigChange], started: Instant) -> CheckResult {
    let mut anomaly = Anomaly::new(KIND);
    let mut seen: BTreeMap<&str, (f64, f64, u64)> = BTreeMap::new();
    let mut reported = 0u64;
    for s in samples {
        let Some(status) = &s.status else { continue };
        if status["removed"].as_bool() != Some(true) {
            continue;
        }
        reported += 1;
        if !member_at(changes, &s.node, s.t_s + GRACE_S) {
            continue;
        }
        let e = seen.entry(&s.node).or_insert((s.t_s, s.t_s, 0));
        e.1 = s.t_s;
        e.2 += 1;
    }
    for (node, (first_s, last_s, samples)) in &seen {
        let config = reports::members::config_at(changes, *first_s)
            .map(|c| c.text())
            .unwrap_or_else(|| "the founders (no member change)".into());
        anomaly.add(json!({
            "node": node, "first_s": first_s, "last_s": last_s, "samples": samples,
            "configuration": config,
            "why": format!("{node} reports itself removed (it halts and answers 410) while the committed configuration ({config}) names it"),
        }));
    }
    CheckResult::of_one_kind(
        CHECKER,
        anomaly,
        &[
            ("removed-samples", reported),
            ("halted-members", seen.len() as u64),
        ],
        started,
    )
}

/// Whether the history names `node` a voter or learner at `t_s` (every
/// node is, in a history without `member` changes).
fn member_at(changes: &[ConfigChange], node: &str, t_s: f64) -> bool {
    standing_at(changes, t_s).is_none_or(|s| s.members.contains(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::verdict::Validity;
    use reports::members::Config;

    fn sample(t_s: f64, node: &str, removed: bool) -> Sample {
        Sample {
            t_s,
            node: node.into(),
            status: Some(json!({"removed": removed})),
        }
    }

    fn change(start_s: f64, end_s: f64, before: &[&str], after: &[&str]) -> ConfigChange {
        let config = |v: &[&str]| Config {
            voters: v.iter().map(|s| s.to_string()).collect(),
            learners: vec![],
        };
        ConfigChange {
            f: "member".into(),
            change: "remove".into(),
            targets: vec![],
            start_s,
            end_s: Some(end_s),
            before: Some(config(before)),
            after: Some(config(after)),
            committed: Some(true),
            leader: None,
            error: None,
        }
    }

    #[test]
    fn a_member_that_reports_itself_removed_is_halted_and_a_removed_one_is_not() {
        // n4 added at 10 s; n3 removed at 20 s (it applies the removal
        // a moment before the history records its end).
        let changes = vec![
            change(9.0, 10.0, &["n1", "n2", "n3"], &["n1", "n2", "n3", "n4"]),
            change(19.0, 20.0, &["n1", "n2", "n3", "n4"], &["n1", "n2", "n4"]),
        ];
        let samples = vec![
            sample(5.0, "n4", false),
            sample(12.0, "n4", true),
            sample(13.0, "n4", true),
            sample(19.5, "n3", true),
            sample(25.0, "n3", true),
        ];
        let r = judge(&samples, &changes, Instant::now());
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies[0].count, 1);
        let e = &r.anomalies[0].examples[0];
        assert_eq!(
            (e["node"].as_str(), e["samples"].as_u64()),
            (Some("n4"), Some(2))
        );
        assert_eq!(r.counts["removed-samples"], 4);

        let healthy = vec![sample(19.5, "n3", true), sample(25.0, "n3", true)];
        assert_eq!(
            judge(&healthy, &changes, Instant::now()).valid,
            Validity::Valid
        );
    }

    #[test]
    fn without_member_changes_any_removed_node_is_halted() {
        let r = judge(&[sample(3.0, "n2", true)], &[], Instant::now());
        assert_eq!(r.valid, Validity::Invalid);
    }
}
