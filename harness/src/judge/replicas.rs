//! The `replicas` checker: every node's state machine compared with every
//! other's, from what the nodes said of themselves (issue 27: "the final
//! reads compare every node's registers too, not only its chain").
//!
//! ordeal-node's `/status` carries `state`: the chain's height and head
//! and a digest of the registers, taken together at the applied index
//! (docs/node-api.md). The registers change only by blocks, so two states
//! with the same height must be equal in head and registers, whichever
//! nodes, processes or moments they come from. The checker reads them from
//! the sampler's `status.jsonl` (every 250 ms of the run) and from each
//! node's final status in `nodes/<n>/metrics.json` (after the final
//! reads), and reports a `replica-divergence` per height where two differ,
//! naming the nodes, when they said it, and which parts differ.
//!
//! Systems whose status has no `state` (etcd, NATS) are not judged here.

use checker::verdict::{Anomaly, CheckResult, Validity};
use reports::status::{self, Sample};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The checker's name in `results.json`.
pub const CHECKER: &str = "replicas";
/// The anomaly's kind.
pub const KIND: &str = "replica-divergence";

/// One node's state as it said it, at one moment.
#[derive(Debug, Clone, PartialEq)]
struct Said {
    node: String,
    /// Seconds since the test began, `None` for the final status.
    t_s: Option<f64>,
    index: u64,
    height: u64,
    head: String,
    registers: String,
}

impl Said {
    /// The state in `status`'s `state`, if it has a well-formed one.
    fn from_status(node: &str, t_s: Option<f64>, status: &Value) -> Option<Said> {
        let s = &status["state"];
        Some(Said {
            node: node.to_string(),
            t_s,
            index: s["index"].as_u64()?,
            height: s["height"].as_u64()?,
            head: s["head"].as_str()?.to_string(),
            registers: s["registers"].as_str()?.to_string(),
        })
    }

    fn json(&self) -> Value {
        json!({
            "node": self.node,
            "when": self.t_s.map_or_else(|| json!("final"), |t| json!((t * 1e3).round() / 1e3)),
            "index": self.index, "height": self.height,
            "head": self.head, "registers": self.registers,
        })
    }
}

/// Judges the run in `run_dir`; `None` when no node said its state (a
/// system without it, or a history judged alone).
pub fn check(run_dir: &Path) -> anyhow::Result<Option<CheckResult>> {
    let started = Instant::now();
    let mut said: Vec<Said> = status::read(&run_dir.join("status.jsonl"))
        .iter()
        .filter_map(|s: &Sample| Said::from_status(&s.node, Some(s.t_s), s.status.as_ref()?))
        .collect();
    let finals: Vec<Said> = reports::load::node_metrics(run_dir)
        .iter()
        .filter_map(|(node, m)| Said::from_status(node, None, &m["status"]))
        .collect();
    if said.is_empty() && finals.is_empty() {
        return Ok(None);
    }
    let final_nodes = finals.len();
    said.extend(finals);
    let mut result = judge(&said, started);
    result
        .counts
        .insert("final-states".into(), final_nodes as u64);
    Ok(Some(result))
}

/// The verdict over every state said: per height, the first state said
/// is the reference, and each node whose state differs from it is one
/// divergence (reported once per node and height).
fn judge(said: &[Said], started: Instant) -> CheckResult {
    let mut by_height: BTreeMap<u64, Vec<&Said>> = BTreeMap::new();
    for s in said {
        by_height.entry(s.height).or_default().push(s);
    }
    let mut anomaly = Anomaly::new(KIND);
    let (mut compared_heights, mut comparisons) = (0u64, 0u64);
    for (height, states) in &by_height {
        if states.len() < 2 {
            continue;
        }
        compared_heights += 1;
        let reference = states[0];
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        for s in &states[1..] {
            comparisons += 1;
            let differs = differences(reference, s);
            if differs.is_empty() || !reported.insert(&s.node) {
                continue;
            }
            anomaly.add(json!({
                "height": height,
                "differs": differs,
                "states": [reference.json(), s.json()],
                "why": format!(
                    "{} and {} hold different {} at height {height}: the same blocks gave different states",
                    reference.node, s.node, differs.join(" and ")
                ),
            }));
        }
    }
    let counts = [
        ("states", said.len() as u64),
        ("heights-compared", compared_heights),
        ("comparisons", comparisons),
    ];
    let mut result = CheckResult::of_one_kind(CHECKER, anomaly, &counts, started);
    let nodes: BTreeSet<&str> = said.iter().map(|s| s.node.as_str()).collect();
    if result.valid == Validity::Valid && compared_heights == 0 && nodes.len() > 1 {
        result.valid = Validity::Unknown;
        result.note = Some(format!(
            "no two states said at the same height ({} said by {} nodes): nothing to compare",
            said.len(),
            nodes.len()
        ));
    }
    result
}

/// Which parts of two states at one height differ.
fn differences(a: &Said, b: &Said) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.head != b.head {
        out.push("head");
    }
    if a.registers != b.registers {
        out.push("registers");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(node: &str, t_s: Option<f64>, height: u64, registers: &str) -> Said {
        Said {
            node: node.into(),
            t_s,
            index: height * 2,
            height,
            head: format!("h{height}"),
            registers: registers.into(),
        }
    }

    #[test]
    fn equal_heights_must_hold_equal_registers_whoever_said_them() {
        let ok = vec![
            said("n1", Some(1.0), 5, "aa"),
            said("n2", Some(1.2), 5, "aa"),
            said("n3", None, 9, "cc"),
            said("n1", None, 9, "cc"),
        ];
        let r = judge(&ok, Instant::now());
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.counts["heights-compared"], 2);
        assert_eq!(r.counts["comparisons"], 2);

        let mut bad = ok.clone();
        bad.push(said("n2", None, 9, "dd"));
        bad.push(said("n2", Some(9.0), 9, "dd"));
        let r = judge(&bad, Instant::now());
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies[0].count, 1, "once per node and height");
        let e = &r.anomalies[0].examples[0];
        assert_eq!(e["differs"], json!(["registers"]));
        assert_eq!(e["states"][1]["node"], "n2");
        assert_eq!(e["states"][1]["when"], "final");
    }

    #[test]
    fn a_different_head_is_named_and_nothing_comparable_is_unknown() {
        let mut forked = said("n2", Some(2.0), 5, "aa");
        forked.head = "other".into();
        let r = judge(&[said("n1", Some(1.0), 5, "aa"), forked], Instant::now());
        assert_eq!(r.anomalies[0].examples[0]["differs"], json!(["head"]));

        let apart = [said("n1", None, 5, "aa"), said("n2", None, 6, "bb")];
        let r = judge(&apart, Instant::now());
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.note.unwrap().contains("nothing to compare"));
    }

    #[test]
    fn statuses_without_a_state_are_not_judged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("status.jsonl"),
            "{\"time\":1000000000,\"node\":\"n1\",\"status\":{\"height\":3}}\n",
        )
        .unwrap();
        assert!(check(dir.path()).unwrap().is_none());
        let n1 = dir.path().join("nodes/n1");
        std::fs::create_dir_all(&n1).unwrap();
        let state = json!({"status": {"state": {"index": 7, "height": 3, "head": "ab", "registers": "00"}}});
        std::fs::write(n1.join("metrics.json"), state.to_string()).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!((r.valid, r.counts["final-states"]), (Validity::Valid, 1));
    }
}
