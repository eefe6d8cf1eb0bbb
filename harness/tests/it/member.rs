//! The `member` nemesis end to end (issue 14): a short run whose history
//! shows an add and a remove committed, judged valid, on the process
//! runtime and (when Docker answers) on Docker.

use super::{docker_available, run, Run};
use serde_json::Value;

/// The run's `member` ends that committed a change adding (`add`,
/// `replace`) or removing (`remove`, `replace`) a node.
fn committed(r: &Run, changes: &[&str]) -> Vec<Value> {
    r.nemesis("member", "end")
        .into_iter()
        .filter(|e| e["value"]["committed"] == true)
        .filter(|e| changes.iter().any(|c| e["value"]["change"] == *c))
        .collect()
}

/// Seed of the member runs: used by no other test, so that the volume check
/// below sees this run's volumes only (tests run concurrently).
const MEMBER_SEED: &str = "14011";

fn member_check(runtime: &str) {
    // One member fault: a replace, or an add and the heal's remove.
    let r = run(&[
        "--workload",
        "register",
        "--nemesis",
        "member",
        "--runtime",
        runtime,
        "--seed",
        MEMBER_SEED,
        "--time-limit-s",
        "12",
        "--recovery-s",
        "5",
    ]);
    let (starts, ends) = (r.nemesis("member", "start"), r.nemesis("member", "end"));
    assert!(
        !starts.is_empty() && starts.len() == ends.len(),
        "{}",
        r.explain()
    );
    assert!(
        !committed(&r, &["add", "replace"]).is_empty(),
        "no add committed:\n{ends:?}"
    );
    assert!(
        !committed(&r, &["remove", "replace"]).is_empty(),
        "no remove committed:\n{ends:?}"
    );
    for e in &ends {
        let voters = e["value"]["after"]["voters"].as_array().map_or(0, Vec::len);
        assert!((3..=5).contains(&voters), "voters out of 3..=5: {e}");
    }
    let added = &committed(&r, &["add", "replace"])[0]["value"]["targets"][0];
    let log = r
        .dir
        .join("nodes")
        .join(added.as_str().unwrap())
        .join("node.log");
    assert!(
        log.is_file(),
        "the added node's log is collected: {}",
        log.display()
    );
    let results = r.json("results.json");
    for check in results["results"].as_array().unwrap() {
        assert_eq!(check["valid"], true, "{check}\n{}", r.explain());
    }
}

#[test]
fn member_adds_and_removes_nodes_and_the_run_stays_valid() {
    member_check("process");
}

#[test]
fn docker_member_adds_and_removes_containers_and_the_run_stays_valid() {
    if docker_available("docker_member") {
        member_check("docker");
        // Every node's data volume (founders' and added nodes') is gone.
        let out = std::process::Command::new("docker")
            .args([
                "volume",
                "ls",
                "--filter",
                "label=ordeal=1",
                "--format",
                "{{.Name}}",
            ])
            .output()
            .unwrap();
        let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|v| v.contains(&format!("-{MEMBER_SEED}-n")) && v.ends_with("-data"))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "volumes left behind: {left:?}");
    }
}
