//! The `crashed` checker (Jepsen flags any node that crashed): every node
//! process that ended by itself during the run (`crashes.json`, written
//! by `run/crashes.rs` from [`Runtime::exits`]) is an anomaly `crashed`,
//! with its exit status, its time, the faults then in force and the last
//! lines of its log (the panic message) — unless a fault that stops its
//! targets' processes (`FaultPackage::stops_process`, named in
//! `crashes.json`) was in force on that node then, or had ended less than
//! [`GRACE_S`] before. The runtime's own kills and its teardown are never
//! reported as exits.
//!
//! [`Runtime::exits`]: crate::runtime::verbs::Runtime::exits

use crate::runtime::exit::Exit;
use checker::verdict::{Anomaly, CheckResult, Results, Validity};
use reports::load::FaultWindow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The checker's name in `results.json`, and its anomaly's kind.
pub const CHECKER: &str = "crashed";
/// The nodes' exits noticed during the run, in the run directory.
pub const CRASHES_JSON: &str = "crashes.json";
/// How long after a process-stopping fault's end an exit of its target is
/// still its doing (the watch polls every 0.5 s; a node failing an fsync
/// just before the heal stops a moment later).
pub const GRACE_S: f64 = 2.0;

/// One exit as the run noticed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noticed {
    /// When it was noticed, seconds on the history's clock (at most one
    /// poll after the process ended).
    pub time_s: f64,
    /// The node, its status and its log's last lines.
    #[serde(flatten)]
    pub exit: Exit,
}

/// `crashes.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Crashes {
    /// The run's faults that stop their targets' processes, by name.
    pub stopping_faults: Vec<String>,
    /// Every exit noticed, in the order noticed.
    pub exits: Vec<Noticed>,
}

/// The run's `crashes.json`, `None` when it has none (a run stored before
/// exits were watched, or a history judged alone).
pub fn load(run_dir: &Path) -> Option<Crashes> {
    serde_json::from_value(reports::load::json(&run_dir.join(CRASHES_JSON))?).ok()
}

/// The exits that were crashes: no process-stopping fault explains them.
pub fn crashes<'a>(crashes: &'a Crashes, windows: &[FaultWindow]) -> Vec<&'a Noticed> {
    crashes
        .exits
        .iter()
        .filter(|n| explained_by(n, windows, &crashes.stopping_faults).is_none())
        .collect()
}

/// The process-stopping fault on the node when it ended, if any.
fn explained_by<'a>(
    noticed: &Noticed,
    windows: &'a [FaultWindow],
    stopping: &[String],
) -> Option<&'a FaultWindow> {
    windows.iter().find(|w| {
        stopping.contains(&w.fault)
            && w.targets.contains(&noticed.exit.node)
            && w.start_s <= noticed.time_s
            && noticed.time_s <= w.end_s + GRACE_S
    })
}

/// Judges the run in `run_dir`; `None` without `crashes.json`.
pub fn check(run_dir: &Path) -> anyhow::Result<Option<CheckResult>> {
    let started = Instant::now();
    let Some(noticed) = load(run_dir) else {
        return Ok(None);
    };
    let history = run_dir.join("history.jsonl");
    let windows = match reports::load::history(&history) {
        Ok(loaded) => loaded.windows,
        Err(e) => anyhow::bail!("reading {}: {e}", history.display()),
    };
    let mut anomaly = Anomaly::new(CHECKER);
    for n in crashes(&noticed, &windows) {
        let in_force: Vec<_> = windows
            .iter()
            .filter(|w| w.start_s <= n.time_s && n.time_s <= w.end_s)
            .map(|w| json!({"fault": w.fault, "targets": w.targets, "start_s": w.start_s}))
            .collect();
        anomaly.add(
            json!({"node": n.exit.node, "time_s": n.time_s, "status": n.exit.status,
            "faults_in_force": in_force, "log_tail": n.exit.log_tail}),
        );
    }
    let counts = BTreeMap::from([
        ("exits".to_string(), noticed.exits.len() as u64),
        (
            "expected_exits".to_string(),
            noticed.exits.len() as u64 - anomaly.count,
        ),
    ]);
    Ok(Some(CheckResult {
        checker: CHECKER.into(),
        valid: if anomaly.count > 0 {
            Validity::Invalid
        } else {
            Validity::Valid
        },
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        counts,
        anomalies: vec![anomaly],
        artifacts: vec![],
        note: None,
    }))
}

/// The crashed checker's lines under the verdict table: each crash's node,
/// time and status, and the panic message when its log has one.
pub fn print_details(results: &Results) {
    for r in results.results.iter().filter(|r| r.checker == CHECKER) {
        for e in r.anomalies.iter().flat_map(|a| &a.examples) {
            println!(
                "crashed: {} at {:.1} s: {}",
                e["node"].as_str().unwrap_or("?"),
                e["time_s"].as_f64().unwrap_or(0.0),
                e["status"].as_str().unwrap_or("?")
            );
            let tail: Vec<&str> = e["log_tail"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .collect();
            if let Some(at) = tail.iter().position(|l| l.contains("panicked at")) {
                for line in &tail[at..tail.len().min(at + 2)] {
                    println!("        {line}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(node: &str, time_s: f64) -> Noticed {
        Noticed {
            time_s,
            exit: Exit {
                node: node.into(),
                status: "exit status 101".into(),
                log_tail: vec!["thread 'raft' panicked at node/src/server.rs:1:1:".into()],
            },
        }
    }

    #[test]
    fn an_exit_no_stopping_fault_explains_is_a_crash_with_the_fault_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let history = [
            r#"{"index":0,"process":"nemesis","type":"info","f":"disk-error","value":{"phase":"start","targets":["n2"]},"time":1000000000}"#,
            r#"{"index":1,"process":"nemesis","type":"info","f":"disk-error","value":{"phase":"end","targets":["n2"]},"time":3000000000}"#,
            r#"{"index":2,"process":"nemesis","type":"info","f":"partition","value":{"phase":"start","targets":["n1","n3"]},"time":5000000000}"#,
            r#"{"index":3,"process":"nemesis","type":"info","f":"partition","value":{"phase":"end","targets":["n1","n3"]},"time":8000000000}"#,
        ];
        std::fs::write(dir.path().join("history.jsonl"), history.join("\n")).unwrap();
        let crashes = Crashes {
            stopping_faults: vec!["disk-error".into()],
            // n2 stopped on its disk error (and just after its heal); n3
            // panicked under a partition; n1 after every fault.
            exits: vec![
                exit("n2", 2.0),
                exit("n2", 4.5),
                exit("n3", 6.0),
                exit("n1", 9.0),
            ],
        };
        let value = serde_json::to_value(&crashes).unwrap();
        crate::store::write_json(&dir.path().join(CRASHES_JSON), &value).unwrap();
        let r = check(dir.path()).unwrap().unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!((r.counts["exits"], r.counts["expected_exits"]), (4, 2));
        let examples = &r.anomalies[0].examples;
        assert_eq!(examples[0]["node"], "n3");
        assert_eq!(examples[0]["faults_in_force"][0]["fault"], "partition");
        assert!(examples[0]["log_tail"][0]
            .as_str()
            .unwrap()
            .contains("panicked"));
        assert_eq!(examples[0]["status"], "exit status 101");
        assert_eq!(examples[1]["node"], "n1");
        assert!(examples[1]["faults_in_force"]
            .as_array()
            .unwrap()
            .is_empty());
        std::fs::remove_file(dir.path().join(CRASHES_JSON)).unwrap();
        assert!(check(dir.path()).unwrap().is_none());
    }
}
