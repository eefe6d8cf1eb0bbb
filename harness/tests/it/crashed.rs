//! The `crashed` oracle on the real node: a node that panics outside any
//! fault that stops processes is an anomaly of the run, with its status,
//! the fault then in force and its panic message; the nemesis's own kills
//! are not.

use super::run;
use serde_json::Value;

fn checker<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["checker"] == name)
        .unwrap_or_else(|| panic!("no {name} checker in {results}"))
}

#[test]
fn a_node_that_panics_is_a_crash_and_a_killed_one_is_not() {
    crash_check("process");
}

#[test]
fn docker_a_node_that_panics_is_a_crash_and_a_killed_one_is_not() {
    if super::docker_available("docker_crashed") {
        crash_check("docker");
    }
}

fn crash_check(runtime: &str) {
    // A lagging follower installs a snapshot; with the bug switch its next
    // snapshot panics (block store generation reused). On a loaded machine
    // the install may come too late for the first run: a second one (a
    // fresh seed) runs only then.
    let bad = run(&[
        "--runtime",
        runtime,
        "--workload",
        "ordering",
        "--nemesis",
        "lag",
        "--seed",
        "5",
        "--snapshot-interval-bytes",
        "4096",
        "--time-limit-s",
        "24",
        "--bug",
        "snapshot-after-install-panics",
        "--test-count",
        "2",
    ]);
    assert_eq!(bad.code(), 1, "{}", bad.explain());
    let results = bad.json("results.json");
    let crashed = checker(&results, "crashed");
    assert_eq!(crashed["valid"], false, "{crashed}");
    let example = &crashed["anomalies"][0]["examples"][0];
    assert!(
        example["status"]
            .as_str()
            .unwrap()
            .starts_with("exit status"),
        "{example}"
    );
    assert!(example["time_s"].as_f64().unwrap() > 0.0);
    let tail = example["log_tail"].to_string();
    assert!(
        tail.contains("panicked") && tail.contains("snapshot-after-install-panics"),
        "{tail}"
    );
    assert!(example["faults_in_force"].is_array());
    assert!(
        bad.explain().contains("panicked at"),
        "the panic is printed: {}",
        bad.explain()
    );
    // `harness check` re-judges the stored run with the same oracles.
    std::fs::remove_file(bad.dir.join("results.json")).unwrap();
    let out = std::process::Command::new(super::HARNESS)
        .arg("check")
        .arg(&bad.dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rejudged = bad.json("results.json");
    assert_eq!(
        checker(&rejudged, "crashed")["anomalies"],
        crashed["anomalies"]
    );
    // The same workload under kill, with no bug: every exit was the
    // nemesis's, none is reported.
    let good = run(&[
        "--runtime",
        runtime,
        "--workload",
        "ordering",
        "--nemesis",
        "kill",
        "--seed",
        "5",
        "--time-limit-s",
        "10",
        "--nemesis-interval-s",
        "3",
    ]);
    assert_eq!(good.code(), 0, "{}", good.explain());
    let results = good.json("results.json");
    let crashed = checker(&results, "crashed");
    assert_eq!(crashed["valid"], true, "{crashed}");
    assert_eq!(crashed["counts"]["exits"], 0, "{crashed}");
    assert!(good.restarts() > 0, "the kill nemesis killed nothing");
}
