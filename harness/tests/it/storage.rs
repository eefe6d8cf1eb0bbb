//! Storage faults on faultfs (process runtime, issue 30): a corrupted
//! durable file refused by name and repaired, a full disk, a rolled-back
//! and a wiped node stopping on the state they lost (not raft-rs's
//! panic), and the four refused by name for etcd.

use super::disk::{assert_disk_faults, disk_run, fuse_available};
use super::{Run, HARNESS};
use serde_json::Value;
use std::process::Command;

/// The `outcome` events of `fault` (how each restarted node fared).
fn outcomes(r: &Run, fault: &str) -> Vec<Value> {
    r.nemesis(fault, "outcome")
}

/// Whether every node log of the run is free of raft-rs's panic on a
/// commit past the log (Fabric #3639).
fn no_commit_panic(r: &Run) -> bool {
    ["n1", "n2", "n3"].iter().all(|n| {
        let log = std::fs::read_to_string(r.dir.join("nodes").join(n).join("node.log"))
            .unwrap_or_default();
        !log.contains("out of range")
    })
}

/// The raft checker's anomaly kinds.
fn raft_anomalies(r: &Run) -> Vec<String> {
    let results = r.json("results.json");
    let raft = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["checker"] == "raft")
        .cloned()
        .unwrap_or(Value::Null);
    raft["anomalies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["count"].as_u64().unwrap_or(0) > 0)
        .filter_map(|a| a["kind"].as_str().map(String::from))
        .collect()
}

/// Every checker valid but `raft`, whose anomalies, if any, are only
/// the lost state itself (a rollback, a wipe, or a cut at the end of the
/// newest log segment the node cannot tell from a torn write,
/// `docs/storage-faults.md`): no acknowledged write lost, every node
/// caught up, no crash.
fn assert_only_lost_state(r: &Run) {
    let results = r.json("results.json");
    for c in results["results"].as_array().unwrap() {
        if c["checker"] != "raft" {
            assert_eq!(c["valid"], true, "{}\n{}", c["checker"], r.explain());
        }
    }
    for kind in raft_anomalies(r) {
        assert!(
            ["Durability", "Commit Monotone", "Vote Kept"].contains(&kind.as_str()),
            "only the lost state itself: {kind}\n{}",
            r.explain()
        );
    }
}

#[test]
fn a_corrupted_node_is_refused_by_name_repaired_and_loses_no_acknowledged_write() {
    if !fuse_available(
        "a_corrupted_node_is_refused_by_name_repaired_and_loses_no_acknowledged_write",
    ) {
        return;
    }
    let args = [
        "--nemesis",
        "corrupt",
        "--seed",
        "1",
        "--nemesis-interval-s",
        "5",
    ];
    let r = disk_run(&[&args[..], &["--time-limit-s", "20"]].concat());
    assert_only_lost_state(&r);
    assert_disk_faults(&r, "corrupt");
    for d in r.nemesis("corrupt", "damage") {
        let c = &d["value"]["damage"];
        assert!(
            c["path"].is_string() && c["offset"].is_u64() && c["length"].is_u64(),
            "the damage names file, offset and length: {d}"
        );
        assert!(c["kind"].is_string(), "{d}");
    }
    let refused: Vec<Value> = outcomes(&r, "corrupt")
        .into_iter()
        .filter(|o| o["value"]["outcome"] == "refused")
        .collect();
    assert!(!refused.is_empty(), "a node refused\n{}", r.explain());
    for o in &refused {
        let reason = o["value"]["reason"].as_str().unwrap_or("");
        assert!(
            [
                "wal.log",
                "snapshot.bin",
                "blocks.",
                "lost acknowledged state"
            ]
            .iter()
            .any(|name| reason.contains(name)),
            "the refusal names the file or the lost state: {o}"
        );
    }
    assert_eq!(
        r.nemesis("corrupt", "repair").len(),
        refused.len(),
        "every refusing node repaired"
    );
}

#[test]
fn a_full_disk_loses_nothing_acknowledged_and_its_node_comes_back() {
    if !fuse_available("a_full_disk_loses_nothing_acknowledged_and_its_node_comes_back") {
        return;
    }
    let r = disk_run(&["--nemesis", "disk-full", "--seed", "1"]);
    assert_eq!(r.code(), 0, "valid\n{}", r.explain());
    assert_disk_faults(&r, "disk-full");
    for s in r.nemesis("disk-full", "start") {
        assert!(s["value"]["enospc_after_bytes"].is_u64(), "{s}");
    }
}

/// A follower that lost what it acknowledged (`fault`: wipe or rollback;
/// seed 3 draws a follower first) stops naming it, is repaired, and only
/// the raft checker's rules about the lost state itself fire: no client
/// lost an acknowledged write.
fn assert_lost_state_refused(fault: &str) {
    let args = [
        "--nemesis",
        fault,
        "--seed",
        "3",
        "--nemesis-interval-s",
        "5",
    ];
    let r = disk_run(&[&args[..], &["--time-limit-s", "14"]].concat());
    assert_disk_faults(&r, fault);
    let start = &r.nemesis(fault, "start")[0]["value"];
    assert_eq!(start["choice"], "random", "a follower: {start}");
    let first = &outcomes(&r, fault)[0]["value"];
    assert_eq!(first["outcome"], "refused", "{first}\n{}", r.explain());
    let reason = first["reason"].as_str().unwrap_or("");
    assert!(reason.contains("lost acknowledged state"), "{reason}");
    assert!(no_commit_panic(&r), "no raft-rs panic on the commit index");
    assert!(!r.nemesis(fault, "repair").is_empty(), "repaired");
    assert_only_lost_state(&r);
}

#[test]
fn a_wiped_follower_stops_naming_its_lost_state_instead_of_panicking() {
    if !fuse_available("a_wiped_follower_stops_naming_its_lost_state_instead_of_panicking") {
        return;
    }
    assert_lost_state_refused("wipe");
}

#[test]
fn a_rolled_back_follower_stops_naming_its_lost_state() {
    if !fuse_available("a_rolled_back_follower_stops_naming_its_lost_state") {
        return;
    }
    assert_lost_state_refused("rollback");
}

#[test]
fn storage_faults_are_refused_by_name_for_etcd() {
    for fault in ["corrupt", "rollback", "wipe", "disk-full"] {
        let out = Command::new(HARNESS)
            .args([
                "--sut",
                "etcd",
                "--workload",
                "register",
                "--nemesis",
                fault,
            ])
            .args(["--runtime", "process", "--store", "/nonexistent-store"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{fault}: {err}");
        assert!(
            err.contains(&format!("--nemesis {fault}")) && err.contains("mmap"),
            "{fault}: {err}"
        );
    }
}
