//! The catch-up (liveness) check: after every fault is healed, each node
//! must reach the leader's height within `--recovery-s`, as the sampled
//! `status.jsonl` shows (`reports::status::catch_up`). A node that does
//! not is an anomaly of the run (`not-caught-up`), not a warning.

use crate::judge::crashed;
use checker::verdict::{Anomaly, CheckResult, Validity};
use reports::status::{self, CatchUpState};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// `recovery_s` when test.json does not say (the flag's default).
const RECOVERY_S_DEFAULT: f64 = 10.0;

/// The outcome of the final recovery wait, in the run directory.
pub const RECOVERY_JSON: &str = "recovery.json";

/// What `recovery.json` holds: whether the members elected a leader and
/// caught up within `recovery_s` of the final heal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    /// Whether they did.
    pub recovered: bool,
    /// The wait, seconds (`--recovery-s`).
    pub recovery_s: f64,
    /// The members waited for.
    pub members: Vec<String>,
}

/// The run's `recovery.json`, `None` when it has none (a run stored
/// before it was written, or a history judged alone).
pub fn recovery(run_dir: &Path) -> Option<Recovery> {
    let value = reports::load::json(&run_dir.join(RECOVERY_JSON))?;
    serde_json::from_value(value).ok()
}

/// When the cluster did not recover, the ordering checker's verdict rests
/// on chains read from nodes that had not caught up: an acknowledged
/// entry missing from them is a liveness failure (`not-recovered`), not
/// proof of lost data. Such a result (invalid by `lost` alone) becomes
/// `unknown`, with the reason in its note.
pub fn liveness_not_safety(results: &mut [CheckResult], recovery: Option<&Recovery>) {
    let Some(r) = recovery.filter(|r| !r.recovered) else {
        return;
    };
    for result in results.iter_mut().filter(|c| c.checker == "ordering") {
        let only_lost = result
            .anomalies
            .iter()
            .filter(|a| a.count > 0)
            .all(|a| a.kind == "lost");
        if result.valid == Validity::Invalid && only_lost {
            result.valid = Validity::Unknown;
            result.note = Some(format!(
                "the cluster did not recover within {} s of the final heal (catch-up: not-recovered): \
                 the `lost` entries may sit on nodes the final reads found behind; a liveness \
                 failure, not proof of lost data",
                r.recovery_s
            ));
        }
    }
}

/// The `not-recovered` anomaly of a run whose final recovery wait failed.
fn not_recovered(recovery: Option<&Recovery>) -> Anomaly {
    let mut anomaly = Anomaly::new("not-recovered");
    if let Some(r) = recovery.filter(|r| !r.recovered) {
        anomaly.add(json!({"recovery_s": r.recovery_s, "members": r.members,
            "what": "no leader with every member caught up before the final reads"}));
    }
    anomaly
}

/// Judges the run in `run_dir`; `None` for a run without `status.jsonl`
/// (stored before the sampler existed) and without `recovery.json`.
pub fn check(run_dir: &Path) -> anyhow::Result<Option<CheckResult>> {
    let started = Instant::now();
    let recovery = recovery(run_dir);
    let path = run_dir.join("status.jsonl");
    if !path.exists() {
        return Ok(recovery.map(|r| {
            let anomaly = not_recovered(Some(&r));
            result(started, BTreeMap::new(), vec![anomaly])
        }));
    }
    let samples = status::read(&path);
    let history = run_dir.join("history.jsonl");
    let loaded = reports::load::history(&history)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", history.display()))?;
    let recovery_s = reports::load::json(&run_dir.join("test.json"))
        .and_then(|t| t["recovery_s"].as_f64())
        .unwrap_or(RECOVERY_S_DEFAULT);
    let mut behind = Anomaly::new("not-caught-up");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let exits = crashed::load(run_dir).unwrap_or_default();
    let crashes = crashed::crashes(&exits, &loaded.windows);
    let per_window = status::catch_up(&samples, &loaded.windows, &loaded.changes, recovery_s);
    for (w, nodes) in loaded.windows.iter().zip(&per_window) {
        for c in nodes {
            // The node's last crash before its catch-up was due: it did
            // not lag, it was down.
            let crash = crashes
                .iter()
                .rfind(|n| n.exit.node == c.node && n.time_s <= w.end_s + recovery_s);
            let key = match c.state {
                CatchUpState::CaughtUp => "caught-up",
                CatchUpState::Behind if crash.is_some() => "crashed",
                CatchUpState::Behind => "behind",
                CatchUpState::Interrupted => "interrupted",
                CatchUpState::Unmeasured => "unmeasured",
                CatchUpState::Removed => "removed",
                CatchUpState::NotMember => "not-member",
            };
            *counts.entry(key.into()).or_default() += 1;
            if c.state == CatchUpState::Behind {
                let mut example = json!({"fault": w.fault, "targets": w.targets, "heal_s": w.end_s,
                    "node": c.node, "height": c.height, "target_height": c.target_height,
                    "recovery_s": recovery_s, "why": "behind"});
                if let Some(n) = crash {
                    example["why"] = json!(format!(
                        "crashed at {:.1} s ({}; see the crashed checker)",
                        n.time_s, n.exit.status
                    ));
                }
                behind.add(example);
            }
        }
    }
    counts.insert("faults".into(), loaded.windows.len() as u64);
    let anomalies = vec![behind, not_recovered(recovery.as_ref())];
    Ok(Some(result(started, counts, anomalies)))
}

/// The checker's result: invalid when any anomaly was counted.
fn result(started: Instant, counts: BTreeMap<String, u64>, anomalies: Vec<Anomaly>) -> CheckResult {
    CheckResult {
        checker: "catch-up".into(),
        valid: if anomalies.iter().any(|a| a.count > 0) {
            Validity::Invalid
        } else {
            Validity::Valid
        },
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        counts,
        anomalies,
        artifacts: vec![],
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_that_never_recovered_is_a_liveness_failure_not_lost_data() {
        let dir = tempfile::tempdir().unwrap();
        let recovery = Recovery {
            recovered: false,
            recovery_s: 10.0,
            members: vec!["n1".into(), "n2".into()],
        };
        crate::store::write_json(
            &dir.path().join(RECOVERY_JSON),
            &serde_json::to_value(&recovery).unwrap(),
        )
        .unwrap();
        let r = check(dir.path())
            .unwrap()
            .expect("judged from recovery.json");
        assert_eq!(r.valid, Validity::Invalid);
        let not_recovered = r.anomalies.iter().find(|a| a.kind == "not-recovered");
        assert_eq!(not_recovered.unwrap().count, 1, "{r:?}");
        let mut lost = Anomaly::new("lost");
        lost.add(json!({"id": "t1"}));
        let ordering = CheckResult {
            checker: "ordering".into(),
            valid: Validity::Invalid,
            check_ms: 0.0,
            counts: BTreeMap::new(),
            anomalies: vec![lost, Anomaly::new("fork")],
            artifacts: vec![],
            note: None,
        };
        let mut results = vec![ordering.clone()];
        liveness_not_safety(&mut results, super::recovery(dir.path()).as_ref());
        assert_eq!(results[0].valid, Validity::Unknown);
        assert!(results[0].note.as_ref().unwrap().contains("not-recovered"));
        // A fork beside the lost entries stays a safety violation.
        let mut forked = ordering.clone();
        forked.anomalies[1].add(json!({}));
        let mut results = vec![forked];
        liveness_not_safety(&mut results, super::recovery(dir.path()).as_ref());
        assert_eq!(results[0].valid, Validity::Invalid);
        // A cluster that recovered: lost is lost.
        let mut results = vec![ordering];
        let fine = Recovery {
            recovered: true,
            ..recovery
        };
        liveness_not_safety(&mut results, Some(&fine));
        assert_eq!(results[0].valid, Validity::Invalid);
    }

    #[test]
    fn a_node_left_behind_after_a_heal_is_an_anomaly_and_a_caught_up_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let history = [
            r#"{"index":0,"process":"nemesis","type":"info","f":"lag","value":{"phase":"start","targets":["n2"]},"time":1000000000}"#,
            r#"{"index":1,"process":"nemesis","type":"info","f":"lag","value":{"phase":"end","targets":["n2"]},"time":3000000000}"#,
        ];
        std::fs::write(dir.path().join("history.jsonl"), history.join("\n")).unwrap();
        std::fs::write(dir.path().join("test.json"), r#"{"recovery_s": 2}"#).unwrap();
        let status = |n2_late: u64| {
            [(0.5, 10, 10), (2.9, 40, 10), (3.5, 45, 20), (5.5, 60, n2_late)]
                .iter()
                .flat_map(|(t, h1, h2)| {
                    [("n1", h1), ("n2", h2)].map(|(n, h)| {
                        format!(
                            r#"{{"time":{},"node":"{n}","status":{{"height":{h},"leader":1,"term":2}}}}"#,
                            (t * 1e9) as u64
                        )
                    })
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        std::fs::write(dir.path().join("status.jsonl"), status(25)).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies[0].count, 1);
        assert_eq!(r.anomalies[0].examples[0]["node"], "n2");
        assert_eq!(r.anomalies[0].examples[0]["target_height"], 40);
        assert_eq!(r.anomalies[0].examples[0]["why"], "behind");
        // The same node, known to have crashed meanwhile: it says so.
        let crashes = json!({"stopping_faults": ["kill"], "exits": [
            {"time_s": 3.2, "node": "n2", "status": "exit status 101", "log_tail": ["panicked"]}]});
        std::fs::write(dir.path().join(crashed::CRASHES_JSON), crashes.to_string()).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!((r.counts.get("behind"), r.counts["crashed"]), (None, 1));
        let why = r.anomalies[0].examples[0]["why"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            why.starts_with("crashed at 3.2 s (exit status 101"),
            "{why}"
        );
        std::fs::remove_file(dir.path().join(crashed::CRASHES_JSON)).unwrap();
        std::fs::write(dir.path().join("status.jsonl"), status(40)).unwrap();
        // Reached 40 only at 5.5 s, after the 2 s of recovery: still behind.
        assert_eq!(check(dir.path()).unwrap().unwrap().valid, Validity::Invalid);
        std::fs::write(dir.path().join("test.json"), r#"{"recovery_s": 3}"#).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.counts["caught-up"], 2);
        std::fs::remove_file(dir.path().join("status.jsonl")).unwrap();
        assert!(check(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_removed_node_is_counted_removed_not_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let history = [
            r#"{"index":0,"process":"nemesis","type":"info","f":"member","value":{"phase":"start","change":"remove","targets":["n2"],"add":[],"remove":["n2"],"leader":false,"before":{"voters":["n1","n2","n3"],"learners":[]}},"time":1000000000}"#,
            r#"{"index":1,"process":"nemesis","type":"info","f":"member","value":{"phase":"end","change":"remove","targets":["n2"],"committed":true,"after":{"voters":["n1","n3"],"learners":[]}},"time":3000000000}"#,
        ];
        std::fs::write(dir.path().join("history.jsonl"), history.join("\n")).unwrap();
        std::fs::write(dir.path().join("test.json"), r#"{"recovery_s": 2}"#).unwrap();
        let status: Vec<String> = [(0.5, 10, 10), (2.9, 40, 12), (3.5, 45, 12), (5.5, 60, 12)]
            .iter()
            .flat_map(|(t, h, h2)| {
                [("n1", h), ("n3", h), ("n2", h2)].map(|(n, h)| {
                    format!(
                        r#"{{"time":{},"node":"{n}","status":{{"height":{h},"leader":1,"term":2}}}}"#,
                        (t * 1e9) as u64
                    )
                })
            })
            .collect();
        std::fs::write(dir.path().join("status.jsonl"), status.join("\n")).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.counts["removed"], 1);
        assert_eq!(r.counts["caught-up"], 2);
    }
}
