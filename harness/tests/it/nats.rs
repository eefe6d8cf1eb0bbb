//! `--sut nats`: NATS JetStream (Debian's nats-server 2.9) driven by the
//! harness on real processes (issue 31, docs/nats.md).

use super::{run, Run};
use serde_json::Value;
use std::process::Command;

/// Whether nats-server can run here; with `ORDEAL_REQUIRE_NATS=1` (CI) a
/// missing server is a failure, otherwise the test says loudly it skipped.
fn nats_available(test: &str) -> bool {
    let found = ["nats-server", "/usr/sbin/nats-server"].iter().any(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var("ORDEAL_REQUIRE_NATS").as_deref() != Ok("1"),
            "{test}: ORDEAL_REQUIRE_NATS=1 but no nats-server (apt-get install nats-server)"
        );
        eprintln!("SKIPPED {test}: no nats-server (apt-get install nats-server)");
    }
    found
}

/// The final reads of a run, by node: each server's own copy.
fn final_copies(r: &Run) -> Vec<(String, Value)> {
    r.history()
        .into_iter()
        .filter(|e| e["f"] == "deliver" && e["type"] == "ok" && e["value"]["final"] == true)
        .map(|e| (e["node"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}

/// Kills on a three-server JetStream cluster: the stream is created at the
/// start, the workers publish with positions, every server's own copy is
/// read at the end (three final reads, each naming its server, as long as
/// the others), the ordering checker judges the positions valid, and the
/// servers' logs, `/varz` and `/jsz` are in the store.
#[test]
fn nats_jetstream_under_kills_keeps_every_acknowledged_message_on_every_server() {
    if !nats_available("nats_kill") {
        return;
    }
    let r = run(&[
        "--sut",
        "nats",
        "--workload",
        "ordering",
        "--nemesis",
        "kill",
        "--seed",
        "8",
    ]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(!r.nemesis("kill", "start").is_empty(), "{}", r.explain());
    let acknowledged: Vec<Value> = r
        .history()
        .into_iter()
        .filter(|e| e["f"] == "submit" && e["type"] == "ok")
        .collect();
    assert!(acknowledged.len() > 200, "{}", r.explain());
    assert!(acknowledged.iter().all(|e| e["value"]["position"].is_u64()));
    let copies = final_copies(&r);
    let names: Vec<&str> = copies.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["n1", "n2", "n3"], "{}", r.explain());
    for (node, copy) in &copies {
        assert_eq!(copy["server"], node.as_str());
        assert_eq!(copy["chain"], "positions");
        let held = copy["blocks"].as_array().unwrap().len();
        assert!(held >= acknowledged.len(), "{node} holds {held}");
    }
    let results = r.json("results.json");
    assert_eq!(results["valid"], true, "{}", r.explain());
    let log = std::fs::read_to_string(r.dir.join("nodes/n1/node.log")).unwrap();
    assert!(log.contains("JetStream"), "n1's log: {log}");
    let jsz = r.json("nodes/n2/jsz.json");
    assert_eq!(
        jsz["account_details"][0]["stream_detail"][0]["name"],
        "ordeal"
    );
    assert_eq!(r.json("nodes/n3/varz.json")["server_name"], "n3");
    assert_eq!(
        r.json("nodes/n1/metrics.json")["status"]["height"].as_u64(),
        Some(copies[0].1["blocks"].as_array().unwrap().len() as u64)
    );
}

/// What cannot reach NATS is refused by name, with the reason, before
/// anything starts (exit 3).
#[test]
fn nats_refuses_what_it_cannot_take_naming_why() {
    let harness = env!("CARGO_BIN_EXE_harness");
    let refused = |flags: &[&str], why: &str| {
        let out = Command::new(harness)
            .args(["--sut", "nats", "--runtime", "process", "--store"])
            .arg(std::env::temp_dir().join("ordeal-nats-refusals"))
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{flags:?}: {stderr}");
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
    };
    let ordering = ["--workload", "ordering", "--nemesis"];
    refused(&[&ordering[..], &["clock"]].concat(), "vDSO");
    refused(&[&ordering[..], &["member"]].concat(), "peer removal");
    refused(&[&ordering[..], &["transfer"]].concat(), "step-down");
    refused(&[&ordering[..], &["lag"]].concat(), "compactions");
    refused(&["--workload", "register"], "only the ordering workload");
    refused(
        &["--workload", "ordering", "--bug", "ack-before-commit"],
        "ordeal-node only",
    );
}

/// Issue 31's finding, kept caught: nats-server 2.9.10 fsyncs a stream's
/// blocks every two minutes and its Raft logs never, so a power failure of
/// every server at once (seed 1's first fault) takes the stream itself:
/// every server's copy is read as empty (the cluster answers "stream not
/// found", each `/jsz` lists no stream) and every acknowledged message is
/// `lost`.
#[test]
fn a_power_failure_of_every_nats_server_loses_the_acknowledged_stream_and_is_caught() {
    if !nats_available("nats_power") || !super::disk::fuse_available("nats_power") {
        return;
    }
    let r = super::disk::disk_run(&[
        "--sut",
        "nats",
        "--workload",
        "ordering",
        "--nemesis",
        "power",
        "--seed",
        "1",
    ]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let first = &r.nemesis("power", "start")[0];
    assert_eq!(first["value"]["scope"], "every node", "{}", r.explain());
    let copies = final_copies(&r);
    assert_eq!(copies.len(), 3, "{}", r.explain());
    for (node, copy) in &copies {
        assert_eq!(copy["blocks"], serde_json::json!([]), "{node}");
        assert!(copy["absent"]
            .as_str()
            .unwrap()
            .contains("stream not found"));
    }
    let acknowledged = r
        .history()
        .iter()
        .filter(|e| e["f"] == "submit" && e["type"] == "ok")
        .count();
    let ordering = &r.json("results.json")["results"][0];
    assert_eq!(ordering["checker"], "ordering");
    let lost = ordering["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "lost")
        .unwrap();
    assert!(acknowledged > 50, "{}", r.explain());
    assert_eq!(lost["count"].as_u64(), Some(acknowledged as u64));
}
