//! The trace additions the oracles of issue 27 read (docs/trace.md:
//! `digest`, `start`'s `applied`, `real_ms`), checked on real processes,
//! and the bug switches that break exactly what each oracle checks.
//!
//! The checks here are small transcriptions of docs/trace.md's rules, so
//! that a test fails when the node breaks one; the `raft` checker
//! (`model::replay`) is the one the harness runs.

use super::members::wait_status;
use super::{converge_some, http, read_trace, status, submit_bodies_to, EXE};
use node::bench::LocalCluster;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Snapshots every ~15 transactions, two entries kept behind them, a
/// digest every 4 applied entries: many comparison points in a short run.
pub(super) const FLAGS: [&str; 6] = [
    "--snapshot-interval-bytes",
    "2000",
    "--snapshot-catchup-entries",
    "2",
    "--trace-digest-every",
    "4",
];

/// `n` transactions writing registers `k0`..`k4` round-robin (values
/// unique to `prefix`), with a payload large enough to reach the
/// snapshot interval.
pub(super) fn register_writes(prefix: &str, n: usize) -> impl Iterator<Item = Value> + '_ {
    (0..n).map(move |k| {
        let value = (prefix.len() * 1000 + k) as i64;
        json!({"id": format!("{prefix}{k}"), "payload": "r".repeat(100),
               "ops": [{"op": "write", "key": format!("k{}", k % 5), "value": value}]})
    })
}

/// A traced 3-node cluster with `flags` in which a follower was down while
/// the leader snapshotted and compacted past it (writing every register
/// but `k0` meanwhile), and has been restarted:
/// it catches up by installing the leader's snapshot. Returns the cluster,
/// the leader's index and the lagging node's.
async fn lag_behind_the_compaction(
    http: &reqwest::Client,
    flags: &[&str],
) -> (LocalCluster, usize, usize) {
    let mut c = LocalCluster::start_traced(Path::new(EXE), 3, flags, true).unwrap();
    let leader = c.wait_leader(http).await.unwrap();
    let (lagging, other) = ((leader + 1) % 3, (leader + 2) % 3);
    submit_bodies_to(
        http,
        &c,
        &[leader, other, lagging],
        register_writes("a", 20),
    )
    .await;
    c.kill(lagging);
    // Not `k0` while it is down (40 writes, as many bytes as before the
    // filter, so that the leader compacts past it as often): the register
    // `install-drops-register` drops (the first) is then written by
    // nothing the lagging node applies after the snapshot, so the loss
    // stays in its state.
    let spare_k0 = register_writes("bb", 50).filter(|tx| tx["ops"][0]["key"] != "k0");
    submit_bodies_to(http, &c, &[leader, other], spare_k0).await;
    c.restart(lagging).unwrap();
    (c, leader, lagging)
}

/// `/status`'s `state` of `nodes` (heights converged: the applied index
/// may differ by empty entries, so it is left out).
async fn states(http: &reqwest::Client, c: &LocalCluster, nodes: &[usize]) -> Vec<Value> {
    let mut out = Vec::new();
    for &i in nodes {
        let mut state = status(http, &c.url(i)).await.unwrap()["state"].clone();
        assert!(
            state["height"].as_u64() > Some(1),
            "node {}: {state}",
            i + 1
        );
        state.as_object_mut().unwrap().remove("index");
        out.push(state);
    }
    out
}

/// Stops every running node with SIGTERM and reads each node's trace.
pub(super) fn stop_and_read(c: &mut LocalCluster) -> Vec<Vec<Value>> {
    for i in 0..c.len() {
        c.terminate(i);
    }
    (0..c.len()).map(|i| read_trace(&c.trace_path(i))).collect()
}

/// The digest events of every node by index: (node, event).
pub(super) fn digests(traces: &[Vec<Value>]) -> BTreeMap<u64, Vec<(usize, &Value)>> {
    let mut by_index: BTreeMap<u64, Vec<(usize, &Value)>> = BTreeMap::new();
    for (i, events) in traces.iter().enumerate() {
        for e in events.iter().filter(|e| e["ev"] == "digest") {
            by_index
                .entry(e["index"].as_u64().unwrap())
                .or_default()
                .push((i, e));
        }
    }
    by_index
}

/// What a digest says of the state (not when or why it was written).
fn state(e: &Value) -> (&Value, &Value, &Value) {
    (&e["height"], &e["head"], &e["registers"])
}

/// Indexes at which two digests (any nodes, any processes) differ.
pub(super) fn divergences(by_index: &BTreeMap<u64, Vec<(usize, &Value)>>) -> Vec<String> {
    let mut out = Vec::new();
    for (index, ds) in by_index {
        let (n0, first) = ds[0];
        for (n, d) in &ds[1..] {
            if state(d) != state(first) {
                out.push(format!(
                    "index {index}: node {} {first} vs node {} {d}",
                    n0 + 1,
                    n + 1
                ));
            }
        }
    }
    out
}

/// Apply continuity (docs/trace.md, `apply`): within one process the
/// first `apply` follows `start`'s `applied`, each next one the previous,
/// and an installed snapshot at `s` moves the next to `s + 1`.
pub(super) fn apply_gaps(events: &[Value]) -> Vec<String> {
    let mut next = None;
    let mut out = Vec::new();
    for e in events {
        let index = e["index"].as_u64().unwrap_or(0);
        match e["ev"].as_str().unwrap() {
            "start" => next = Some(e["applied"].as_u64().unwrap() + 1),
            "snapshot" if e["action"] == "installed" => next = Some(index + 1),
            "apply" => {
                if next.is_some_and(|n| n != index) {
                    out.push(format!(
                        "seq {}: applied {index}, expected {}",
                        e["seq"],
                        next.unwrap()
                    ));
                }
                next = Some(index + 1);
            }
            _ => {}
        }
    }
    out
}

/// Persist before send (docs/trace.md): a granted append response, vote,
/// or a candidate's own vote request that leaves before the `persist` (or
/// the recovered `start`) that covers it.
pub(super) fn sends_before_persist(events: &[Value]) -> Vec<String> {
    let (mut last_index, mut term, mut vote) = (0, 0, 0);
    let mut out = Vec::new();
    for e in events {
        let field = |name: &str| e[name].as_u64().unwrap_or(0);
        match e["ev"].as_str().unwrap() {
            "start" | "persist" => {
                (last_index, term, vote) = (field("last_index"), field("term"), field("vote"))
            }
            "send" if e["reject"] == false => {
                // A vote is covered by its own term and vote saved, or by
                // a later term saved (nothing can vote in its term again):
                // one turn may grant a vote and then move on to a higher
                // term before the persist that covers both.
                let vote_covered =
                    |by: u64| term > field("term") || (term, vote) == (field("term"), by);
                let covered = match e["msg_type"].as_str().unwrap() {
                    "MsgAppendResponse" => field("index") <= last_index,
                    "MsgRequestVoteResponse" => vote_covered(field("to")),
                    "MsgRequestVote" => vote_covered(field("from")),
                    _ => true,
                };
                if !covered {
                    out.push(format!(
                        "{e} ahead of the persist (log to {last_index}, term {term}, vote {vote})"
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Issue 27: the digests at one index are equal on every node — founders,
/// a restarted node recovering from its own snapshot, a follower that
/// installed the leader's snapshot, a node added later — and on the
/// correct node apply continuity and persist-before-send hold throughout.
/// The digests are computed in separate processes, so equal digests are
/// also the proof that the digest is deterministic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_has_the_same_digest_at_every_index() {
    let http = http();
    let (mut c, leader, lagging) = lag_behind_the_compaction(&http, &FLAGS).await;
    let other = 3 - leader - lagging;
    wait_status(&http, &c, lagging, "installed a snapshot", |s| {
        s["snapshots_installed"].as_u64() >= Some(1)
    })
    .await;
    c.kill(other);
    c.restart(other).unwrap();
    let new = c.add_node().unwrap();
    let add = json!({"changes": [{"op": "add", "id": 4, "addr": c.peer_addr(new)}]});
    let r = http
        .post(format!("{}/members", c.url(leader)))
        .json(&add)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    submit_bodies_to(&http, &c, &[leader], register_writes("ccc", 30)).await;
    converge_some(&http, &c, &[0, 1, 2, 3]).await;
    // /status says the same state on every node at the same height.
    let states = states(&http, &c, &[0, 1, 2, 3]).await;
    assert!(states.iter().all(|s| *s == states[0]), "{states:?}");
    assert_ne!(states[0]["registers"], "0000000000000000");
    let traces = stop_and_read(&mut c);
    let by_index = digests(&traces);
    assert_eq!(divergences(&by_index), Vec::<String>::new());
    for (i, events) in traces.iter().enumerate() {
        assert_eq!(apply_gaps(events), Vec::<String>::new(), "node {}", i + 1);
        assert_eq!(
            sends_before_persist(events),
            Vec::<String>::new(),
            "node {}",
            i + 1
        );
    }
    // What was compared: every cause, and every installed snapshot's state
    // against the leader's digest of the snapshot it took.
    let all: Vec<&Value> = by_index.values().flatten().map(|(_, e)| *e).collect();
    for cause in ["apply", "snapshot_taken", "snapshot_installed", "start"] {
        assert!(all.iter().any(|e| e["cause"] == cause), "no {cause} digest");
    }
    assert!(
        all.iter()
            .any(|e| e["cause"] == "start" && e["index"].as_u64() > Some(0)),
        "no restart from a snapshot"
    );
    assert!(
        all.iter().any(|e| e["registers"] != "0000000000000000"),
        "no register written"
    );
    for (index, ds) in &by_index {
        for (n, _) in ds
            .iter()
            .filter(|(_, e)| e["cause"] == "snapshot_installed")
        {
            assert!(
                ds.iter().any(|(m, _)| m != n),
                "node {}: installed {index}, compared with nothing",
                n + 1
            );
        }
    }
    let installers: BTreeSet<usize> = all
        .iter()
        .filter(|e| e["cause"] == "snapshot_installed")
        .map(|e| e["node"].as_u64().unwrap() as usize - 1)
        .collect();
    assert!(
        installers.contains(&lagging) && installers.contains(&new),
        "installed by {installers:?}"
    );
    let shared = by_index
        .values()
        .filter(|ds| ds.iter().map(|(n, _)| n).collect::<BTreeSet<_>>().len() >= 3)
        .count();
    assert!(
        shared >= 10,
        "only {shared} indexes compared across three nodes or more"
    );
}

/// `install-drops-register`: the follower that installs the leader's
/// snapshot holds one register fewer; its `snapshot_installed` digest
/// differs from the leader's `snapshot_taken` one at the same index
/// (chain equal, registers not), which is what the digest oracle sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_drops_register_diverges_at_the_installed_index() {
    let http = http();
    let flags = [&FLAGS[..], &["--bug", "install-drops-register"]].concat();
    let (mut c, leader, lagging) = lag_behind_the_compaction(&http, &flags).await;
    wait_status(&http, &c, lagging, "installed a snapshot", |s| {
        s["snapshots_installed"].as_u64() >= Some(1)
    })
    .await;
    // /status's state shows it too, at equal heights: the same head,
    // different registers (what the harness's `replicas` checker reads).
    converge_some(&http, &c, &[0, 1, 2]).await;
    let states = states(&http, &c, &[leader, lagging]).await;
    assert_eq!(states[0]["head"], states[1]["head"]);
    assert_ne!(states[0]["registers"], states[1]["registers"]);
    let traces = stop_and_read(&mut c);
    let by_index = digests(&traces);
    let (index, installed) = by_index
        .iter()
        .find_map(|(i, ds)| {
            ds.iter()
                .find(|(n, e)| *n == lagging && e["cause"] == "snapshot_installed")
                .map(|(_, e)| (*i, *e))
        })
        .expect("an installed digest");
    let (_, taken) = by_index[&index]
        .iter()
        .find(|(n, _)| *n == leader)
        .expect("the leader's digest at the installed index");
    assert_eq!(
        (&installed["height"], &installed["head"]),
        (&taken["height"], &taken["head"])
    );
    assert_ne!(
        installed["registers"], taken["registers"],
        "{installed} vs {taken}"
    );
    assert!(divergences(&by_index)
        .iter()
        .any(|d| d.starts_with(&format!("index {index}:"))));
    // Only the digest oracle's property is broken.
    for events in &traces {
        assert_eq!(apply_gaps(events), Vec::<String>::new());
        assert_eq!(sends_before_persist(events), Vec::<String>::new());
    }
}

/// `restart-skips-entry`: after a SIGKILL and restart the node's first
/// `apply` is two past the `start`'s `applied` (the entry in between is
/// never applied); before the restart its applies were continuous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_skips_entry_leaves_a_gap_after_the_restart() {
    let http = http();
    let flags = ["--bug", "restart-skips-entry"];
    let mut c = LocalCluster::start_traced(Path::new(EXE), 3, &flags, true).unwrap();
    let leader = c.wait_leader(&http).await.unwrap();
    let follower = (leader + 1) % 3;
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 10)).await;
    converge_some(&http, &c, &[0, 1, 2]).await;
    c.kill(follower);
    c.restart(follower).unwrap();
    submit_bodies_to(&http, &c, &[leader], register_writes("bb", 10)).await;
    let commit = status(&http, &c.url(leader)).await.unwrap()["commit_index"].as_u64();
    wait_status(&http, &c, follower, "applied the new entries", |s| {
        s["applied_index"].as_u64() >= commit
    })
    .await;
    let traces = stop_and_read(&mut c);
    let events = &traces[follower];
    let restart = events.iter().rposition(|e| e["ev"] == "start").unwrap();
    assert!(restart > 0, "one start per process");
    assert_eq!(
        apply_gaps(&events[..restart]),
        Vec::<String>::new(),
        "before the restart"
    );
    let gaps = apply_gaps(&events[restart..]);
    let applied = events[restart]["applied"].as_u64().unwrap();
    let expected = format!("applied {}, expected {}", applied + 2, applied + 1);
    assert!(gaps.len() == 1 && gaps[0].ends_with(&expected), "{gaps:?}");
    for events in &traces {
        assert_eq!(sends_before_persist(events), Vec::<String>::new());
    }
    // The entry skipped here is the first leader's empty one (no block), so
    // the states stay equal: only continuity is broken. (A skipped block,
    // after a restart from a snapshot, diverges the state from then on.)
    assert_eq!(applied, 0);
    assert_eq!(divergences(&digests(&traces)), Vec::<String>::new());
}

/// `ack-before-fsync`: followers' append responses leave before the
/// `persist` that covers them (and the persist still follows: the fsync is
/// kept), which is what the persist-before-send oracle sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_before_fsync_sends_append_responses_ahead_of_their_persist() {
    let http = http();
    let flags = ["--bug", "ack-before-fsync"];
    let mut c = LocalCluster::start_traced(Path::new(EXE), 3, &flags, true).unwrap();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 20)).await;
    converge_some(&http, &c, &[0, 1, 2]).await;
    let traces = stop_and_read(&mut c);
    for (i, events) in traces.iter().enumerate() {
        assert_eq!(apply_gaps(events), Vec::<String>::new());
        let early = sends_before_persist(events);
        assert!(
            early.iter().all(|v| v.contains("MsgAppendResponse")),
            "{early:?}"
        );
        if i == leader {
            continue;
        }
        assert!(early.len() >= 5, "node {}: {early:?}", i + 1);
        let acked = events
            .iter()
            .filter(|e| e["msg_type"] == "MsgAppendResponse" && e["ev"] == "send");
        let last_acked = acked.filter_map(|e| e["index"].as_u64()).max().unwrap();
        let persisted = events
            .iter()
            .filter(|e| e["ev"] == "persist")
            .filter_map(|e| e["last_index"].as_u64())
            .max();
        assert!(
            persisted >= Some(last_acked),
            "node {}: the fsync is kept",
            i + 1
        );
    }
    assert_eq!(divergences(&digests(&traces)), Vec::<String>::new());
}

/// `snapshot-after-install-panics`: the lagging follower installs the
/// leader's snapshot, then panics when it takes its own: the process exits
/// non-zero with the panic in its log (the harness's `crashed` oracle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_after_install_panics_when_the_node_next_snapshots() {
    let http = http();
    let flags = [&FLAGS[..], &["--bug", "snapshot-after-install-panics"]].concat();
    let (mut c, leader, lagging) = lag_behind_the_compaction(&http, &flags).await;
    let other = 3 - leader - lagging;
    // Writes until the lagging node has applied a snapshot interval's
    // bytes after its install (which may come late, when the leader's
    // snapshot it gets is a recent one) and so snapshots, and dies.
    let mut exit = None;
    for round in 0..8 {
        let prefix = "c".repeat(round + 3);
        submit_bodies_to(&http, &c, &[leader, other], register_writes(&prefix, 20)).await;
        exit = c.wait_exit(lagging, Duration::from_secs(3));
        if exit.is_some() {
            break;
        }
    }
    let log = c.log(lagging);
    let exit = exit.unwrap_or_else(|| panic!("node {} still runs\n{log}", lagging + 1));
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains("panicked") && log.contains("snapshot-after-install-panics"),
        "{log}"
    );
    let traces = stop_and_read(&mut c);
    let installed = traces[lagging]
        .iter()
        .any(|e| e["ev"] == "snapshot" && e["action"] == "installed");
    assert!(installed, "the panic came after an installed snapshot");
    // Nothing else is broken; the leader and the other follower took
    // snapshots without panicking.
    assert_eq!(divergences(&digests(&traces)), Vec::<String>::new());
    for events in &traces {
        assert_eq!(apply_gaps(events), Vec::<String>::new());
        assert_eq!(sends_before_persist(events), Vec::<String>::new());
    }
    for i in [leader, other] {
        assert!(
            traces[i]
                .iter()
                .any(|e| e["ev"] == "snapshot" && e["action"] == "taken"),
            "node {}",
            i + 1
        );
    }
}

/// Issue 27's `real_ms` is the host's clock even when libfaketime fakes
/// the node's (the harness's clock nemesis): under `FAKETIME="+100 x1"`,
/// `time_ms` runs 100 s ahead of `real_ms`, and `real_ms` lies within the
/// test's own (unfaked) clock readings. Skips, saying so, without
/// libfaketime (Debian: `libfaketime`).
#[test]
fn real_ms_is_not_faked_by_libfaketime() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!("SKIPPED real_ms_is_not_faked_by_libfaketime: {LIBFAKETIME} is not installed");
        return;
    }
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let dir = tempfile::tempdir().unwrap();
    let port = || node::ports::free_port(std::net::Ipv4Addr::LOCALHOST).unwrap();
    let (peer, client) = (port(), port());
    let trace = dir.path().join("trace.jsonl");
    let before = now_ms();
    let mut child = std::process::Command::new(EXE)
        .args([
            "run",
            "--id",
            "1",
            "--peers",
            &format!("1=127.0.0.1:{peer}"),
        ])
        .args([
            "--listen-peer",
            &format!("127.0.0.1:{peer}"),
            "--listen-client",
            &format!("127.0.0.1:{client}"),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--trace")
        .arg(&trace)
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "+100 x1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The single node elects itself at once: a `persist` of its vote.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&trace).is_ok_and(|t| t.contains("\"ev\":\"persist\"")) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no persist in {} within 20 s", trace.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let after = now_ms();
    let events = read_trace(&trace);
    assert_eq!(events[0]["pid"], child.id());
    let real: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("real_ms").is_some())
        .collect();
    assert!(real.len() >= 4, "{events:?}");
    for e in real {
        let (time, real) = (
            e["time_ms"].as_u64().unwrap(),
            e["real_ms"].as_u64().unwrap(),
        );
        assert!(
            (before..=after).contains(&real),
            "{e}: not within {before}..={after}"
        );
        let ahead_ms = time as i64 - real as i64;
        assert!(
            (99_000..=101_000).contains(&ahead_ms),
            "{e}: time_ms - real_ms = {ahead_ms}"
        );
    }
}
