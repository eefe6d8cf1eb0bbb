//! `harness replay` (issue 32): a run's schedule.json done again on a
//! fresh cluster — the same faults, on the same targets, with the same
//! parameters, at the same offsets from the workload's start.

use super::{node_binary, run, Run, HARNESS};
use serde_json::Value;
use std::process::Command;

/// `(f, targets)` of every nemesis start event, in order.
fn starts(history: &[Value]) -> Vec<(Value, Value)> {
    history
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["value"]["phase"] == "start")
        .map(|e| (e["f"].clone(), e["value"]["targets"].clone()))
        .collect()
}

/// What a schedule's faults did, without when they really did it.
fn planned(schedule: &Value) -> Vec<Value> {
    schedule["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            serde_json::json!([
                f["name"],
                f["targets"],
                f["params"],
                f["heal"],
                f["start_ms"],
                f["end_ms"]
            ])
        })
        .collect()
}

#[test]
fn replay_does_the_same_faults_on_the_same_targets_at_the_same_offsets() {
    let original = run(&[
        "--workload",
        "ordering",
        "--nemesis",
        "kill,pause,partition",
        "--time-limit-s",
        "20",
        "--seed",
        "32",
    ]);
    assert_eq!(original.code(), 0, "{}", original.explain());
    let schedule = original.json("schedule.json");
    assert!(planned(&schedule).len() >= 3, "{schedule:#}");
    assert_eq!(schedule["seed"], 32);
    assert_eq!(
        schedule["plan"]["seed"], 32,
        "the plan as test.json holds it"
    );

    let store = tempfile::tempdir().unwrap();
    let output = Command::new(HARNESS)
        .arg("replay")
        .arg(&original.dir)
        .arg("--store")
        .arg(store.path())
        .arg("--node-binary")
        .arg(node_binary())
        .output()
        .unwrap();
    let latest = store.path().join("latest");
    let replay = Run {
        output,
        dir: std::fs::canonicalize(&latest).unwrap_or(latest),
        _store: store,
    };
    assert_eq!(replay.code(), 0, "{}", replay.explain());
    let stdout = String::from_utf8_lossy(&replay.output.stdout);
    assert!(
        stdout.contains("drift of start: median"),
        "{}",
        replay.explain()
    );

    let again = replay.json("schedule.json");
    assert_eq!(
        planned(&again),
        planned(&schedule),
        "the same faults, targets, params and offsets"
    );
    assert_eq!(starts(&replay.history()), starts(&original.history()));
    assert_eq!(
        replay.json("test.json")["replay_of"],
        original.dir.join("schedule.json").display().to_string()
    );
    let drift = replay.json("drift.json");
    assert_eq!(
        drift["faults"].as_array().unwrap().len(),
        planned(&schedule).len()
    );
    let worst = drift["start_drift_ms_worst"].as_i64().unwrap();
    assert!(
        worst.abs() < 1_000,
        "a fault started {worst} ms off its plan: {drift:#}"
    );
}
