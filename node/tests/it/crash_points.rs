//! Crash points (issue 29, docs/crash-points.md) on real processes: a
//! point armed on one node of a traced cluster, the cluster driven to it
//! (load, snapshots, a follower behind the compaction, a membership
//! change, an election), the node seen to die there (SIGABRT, the trace's
//! last event its `crash_point`), then restarted: the cluster must recover
//! with every chain equal, every state digest at an index equal across
//! nodes and processes, applies continuous and no send ahead of its
//! persist (docs/trace.md's oracles, `oracles.rs`).

use super::members::{post, wait_status};
use super::oracles::{
    apply_gaps, digests, divergences, register_writes, sends_before_persist, stop_and_read, FLAGS,
};
use super::{chain, converge, http, read_trace, submit_bodies_to, EXE};
use node::bench::LocalCluster;
use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node may take to reach an armed point once driven to it.
const FIRE_WAIT_MAX: Duration = Duration::from_secs(60);

/// A traced 3-node cluster with the oracles' flags (a snapshot every ~15
/// transactions), and its leader.
async fn cluster(http: &reqwest::Client) -> (LocalCluster, usize) {
    let c = LocalCluster::start_traced(Path::new(EXE), 3, &FLAGS, true).unwrap();
    let leader = c.wait_leader(http).await.unwrap();
    (c, leader)
}

/// `POST /crash-points` on node `i`; the answer, which must be 200.
async fn arm(http: &reqwest::Client, c: &LocalCluster, i: usize, body: Value) -> Value {
    let (status, answer) = post(http, c, i, "/crash-points", body.clone()).await;
    assert_eq!(status, 200, "{body}: {answer}");
    assert_eq!(answer["armed"], true, "{answer}");
    answer
}

/// GETs `path` on node `i`; the status and the JSON answer (0 and null
/// while the node does not answer: starting, or gone).
async fn get(http: &reqwest::Client, c: &LocalCluster, i: usize, path: &str) -> (u16, Value) {
    match http.get(format!("{}{path}", c.url(i))).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// Starts a fourth node and has the leader add it; its index.
async fn add_fourth(http: &reqwest::Client, c: &mut LocalCluster, leader: usize) -> usize {
    let new = c.add_node().unwrap();
    let add = json!({"changes": [{"op": "add", "id": new + 1, "addr": c.peer_addr(new)}]});
    let (status, answer) = post(http, c, leader, "/members", add).await;
    assert_eq!(status, 200, "{answer}");
    new
}

/// Register writes round-robin to some nodes until stopped, each tried
/// once (a node dying, a leader changing: failures are expected here).
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(http: &reqwest::Client, c: &LocalCluster, nodes: &[usize], prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let urls: Vec<String> = nodes.iter().map(|&i| c.url(i)).collect();
        let (http, prefix, flag) = (http.clone(), prefix.to_string(), stop.clone());
        let task = tokio::spawn(async move {
            let mut k = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let body = json!({"id": format!("{prefix}{k}"), "payload": "c".repeat(100),
                    "ops": [{"op": "write", "key": format!("k{}", k % 5), "value": k as i64}]});
                let url = &urls[k % urls.len()];
                let sent = http.post(format!("{url}/submit")).json(&body).send().await;
                if sent.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                k += 1;
            }
        });
        Load { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// Waits for node `i` to exit on its own; its status.
async fn wait_exit(c: &mut LocalCluster, i: usize) -> ExitStatus {
    let deadline = Instant::now() + FIRE_WAIT_MAX;
    loop {
        if let Some(status) = c.wait_exit(i, Duration::ZERO) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "node {} did not exit within {FIRE_WAIT_MAX:?}\n{}",
            i + 1,
            c.log(i)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node `i` died of an abort at `point`: SIGABRT, the trace's last event
/// the point's `crash_point`, the log saying so.
fn assert_aborted_at(c: &LocalCluster, i: usize, status: ExitStatus, point: &str) {
    let log = c.log(i);
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{log}");
    let events = read_trace(&c.trace_path(i));
    let last = events.last().unwrap();
    assert_eq!(last["ev"], "crash_point", "{last}");
    assert_eq!(
        (&last["name"], &last["action"]),
        (&json!(point), &json!("abort"))
    );
    assert!(last["real_ms"].as_u64().is_some() && last["hit"].as_u64() >= Some(1));
    assert!(
        log.contains("crash point fired") && log.contains(point),
        "{log}"
    );
}

/// Restarts `restart` (node `crashed` among them), orders more writes
/// through every node, and checks the recovery: every chain equal, and on
/// the traces the digest, apply-continuity and persist-before-send
/// oracles, with the crashed node's new process compared with the others.
async fn recover_and_check(
    http: &reqwest::Client,
    c: &mut LocalCluster,
    restart: &[usize],
    crashed: usize,
    point: &str,
) {
    for &i in restart {
        c.restart(i).unwrap();
    }
    let all: Vec<usize> = (0..c.len()).collect();
    submit_bodies_to(http, c, &all, register_writes("after-the-crash", 12)).await;
    let height = converge(http, c).await;
    let first = chain(http, &c.url(0)).await;
    assert_eq!(first.len() as u64, height);
    for i in 1..c.len() {
        assert!(
            chain(http, &c.url(i)).await == first,
            "node {}'s chain",
            i + 1
        );
    }
    let traces = stop_and_read(c);
    let events = &traces[crashed];
    let fired = events
        .iter()
        .rposition(|e| e["ev"] == "crash_point" && e["name"] == point)
        .expect("the crash_point event");
    let restarted = events[fired..].iter().any(|e| e["ev"] == "start");
    assert!(restarted, "no start after the crash_point event");
    let by_index = digests(&traces);
    assert_eq!(divergences(&by_index), Vec::<String>::new(), "{point}");
    for (i, events) in traces.iter().enumerate() {
        assert_eq!(apply_gaps(events), Vec::<String>::new(), "node {}", i + 1);
        let early = sends_before_persist(events);
        assert_eq!(early, Vec::<String>::new(), "node {}", i + 1);
    }
    // The restarted process's state was compared with another node's.
    let after: Vec<u64> = events[fired..]
        .iter()
        .filter(|e| e["ev"] == "digest")
        .filter_map(|e| e["index"].as_u64())
        .collect();
    let compared = after
        .iter()
        .any(|index| by_index[index].iter().any(|(n, _)| *n != crashed));
    assert!(compared, "{point}: digests after the restart {after:?}");
}

/// Arms `point` (abort, on its second hit) on the leader or a follower,
/// writes until it fires, restarts the node and checks the recovery.
async fn crash_under_load(point: &str, on_leader: bool) {
    let http = http();
    let (mut c, leader) = cluster(&http).await;
    let target = if on_leader { leader } else { (leader + 1) % 3 };
    submit_bodies_to(&http, &c, &[leader], register_writes("before", 5)).await;
    let armed = arm(&http, &c, target, json!({"name": point, "hit": 2})).await;
    assert_eq!(
        (&armed["action"], &armed["hit"]),
        (&json!("abort"), &json!(2))
    );
    let load = Load::start(&http, &c, &[0, 1, 2], "load-");
    let status = wait_exit(&mut c, target).await;
    load.stop().await;
    assert_aborted_at(&c, target, status, point);
    recover_and_check(&http, &mut c, &[target], target, point).await;
}

macro_rules! under_load {
    ($($(#[doc = $doc:literal])* $test:ident: $point:literal on $role:ident;)*) => {$(
        $(#[doc = $doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            crash_under_load($point, stringify!($role) == "leader").await;
        }
    )*};
}

under_load! {
    /// The log's batch written, not fsynced (the raft thread).
    a_crash_before_a_log_fsync_recovers: "wal.append.before-fsync" on follower;
    /// The leader dies with entries fsynced that it has not sent on.
    a_crash_after_a_log_fsync_recovers: "wal.append.after-fsync" on leader;
    /// Moving to the prepared segment after a compaction.
    a_crash_before_a_segment_switch_recovers: "wal.segment.before-switch" on follower;
    /// Writing moved to the new segment, its first record only buffered.
    a_crash_after_a_segment_switch_recovers: "wal.segment.after-switch" on leader;
    /// The next segment just created, empty (the `wal-segments` thread).
    a_crash_with_an_empty_new_segment_recovers: "wal.prepare.after-create" on leader;
    /// The next segment's header synced, its name not.
    a_crash_before_a_new_segments_name_is_synced_recovers: "wal.prepare.before-dir-fsync" on follower;
    /// Covered segments not removed yet (the `wal-segments` thread).
    a_crash_before_removing_covered_segments_recovers: "wal.compact.before-remove" on leader;
    /// Covered segments removed, the removal not synced.
    a_crash_after_removing_covered_segments_recovers: "wal.compact.after-remove" on follower;
    /// Blocks written to the store, not synced (the snapshot thread).
    a_crash_during_a_block_store_append_recovers: "blockstore.append.before-sync" on follower;
    /// Blocks durable in the store, no manifest naming them (FAB-18244).
    a_crash_after_a_block_store_append_recovers: "blockstore.append.after-sync" on leader;
    /// The manifest written beside the snapshot file (Fabric #3584).
    a_crash_with_a_written_manifest_recovers: "snapshot.take.after-write" on follower;
    /// The snapshot file about to be replaced (etcd #10219).
    a_crash_before_the_snapshot_rename_recovers: "snapshot.take.before-rename" on leader;
    /// The manifest renamed into place, its name not fsynced.
    a_crash_after_the_manifest_rename_recovers: "snapshot.take.before-dir-fsync" on follower;
    /// The snapshot durable, the log not yet compacted.
    a_crash_before_compaction_recovers: "snapshot.take.after-dir-fsync" on leader;
}

/// A traced cluster whose follower was down while the leader compacted
/// past it and leadership moved (so the snapshot's term is newer than the
/// follower's saved term), restarted with `armed` flags while writes go on
/// to the others: it installs the leader's snapshot. Returns the cluster,
/// the lagging node and the load.
async fn lag_and_restart(http: &reqwest::Client, armed: &[&str]) -> (LocalCluster, usize, Load) {
    let (mut c, leader) = cluster(http).await;
    let (lagging, other) = ((leader + 1) % 3, (leader + 2) % 3);
    submit_bodies_to(http, &c, &[leader, other], register_writes("a", 20)).await;
    c.kill(lagging);
    let (status, answer) = post(http, &c, leader, "/transfer", json!({"to": other + 1})).await;
    assert_eq!(status, 200, "{answer}");
    wait_status(http, &c, other, "leading", |s| s["role"] == "leader").await;
    submit_bodies_to(http, &c, &[leader, other], register_writes("bb", 40)).await;
    c.set_flags(lagging, &[&FLAGS[..], armed].concat());
    c.restart(lagging).unwrap();
    let load = Load::start(http, &c, &[leader, other], "load-");
    (c, lagging, load)
}

/// The lagging node's trace up to its crash: the crash came after it
/// received a snapshot in a term newer than the one it had saved.
fn assert_crashed_after_a_newer_snapshot(c: &LocalCluster, lagging: usize) -> Vec<Value> {
    let events = read_trace(&c.trace_path(lagging));
    let snapshot_term = events
        .iter()
        .rev()
        .find(|e| e["ev"] == "recv" && e["msg_type"] == "MsgSnapshot")
        .map(|e| e["term"].as_u64().unwrap())
        .expect("the snapshot was received");
    let saved_term = events
        .iter()
        .rev()
        .find(|e| e["ev"] == "start")
        .map(|e| e["term"].as_u64().unwrap())
        .unwrap();
    assert!(saved_term < snapshot_term, "{saved_term} {snapshot_term}");
    events
}

/// The lagging node restarted with `point` armed by flag: it dies
/// installing the leader's snapshot, and recovers when restarted.
async fn crash_while_installing(point: &str) {
    let http = http();
    let (mut c, lagging, load) = lag_and_restart(&http, &["--crash-point", point]).await;
    let status = wait_exit(&mut c, lagging).await;
    load.stop().await;
    assert_aborted_at(&c, lagging, status, point);
    assert_crashed_after_a_newer_snapshot(&c, lagging);
    c.set_flags(lagging, &FLAGS);
    recover_and_check(&http, &mut c, &[lagging], lagging, point).await;
}

/// How long the install is held (a `sleep` crash point) while the test
/// arms the point under test, and the margin within it that the snapshot
/// and `wal-segments` threads get to finish what they had from before the
/// install (a small snapshot or a removal: milliseconds).
const INSTALL_HOLD_MS: u64 = 5000;
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(1);

/// The lagging node dies at `point` the first time it reaches it after
/// installing the leader's snapshot: the install holds at `hold`, and
/// `point` is armed meanwhile, so that nothing reaches it in between but
/// work the other threads had from before (given a margin to finish; the
/// crash is then checked to come after the hold's end).
async fn crash_after_an_install(hold: &str, point: &str) {
    let http = http();
    let flag = format!("{hold}=sleep:{INSTALL_HOLD_MS}");
    let (mut c, lagging, load) = lag_and_restart(&http, &["--crash-point", &flag]).await;
    let deadline = Instant::now() + FIRE_WAIT_MAX;
    loop {
        let (_, list) = get(&http, &c, lagging, "/crash-points").await;
        let held = list["points"]
            .as_array()
            .is_some_and(|points| points.iter().any(|p| p["name"] == hold && p["fired"] == 1));
        if held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never installed\n{}",
            c.log(lagging)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(IN_FLIGHT_MARGIN).await;
    arm(&http, &c, lagging, json!({"name": point})).await;
    let status = wait_exit(&mut c, lagging).await;
    load.stop().await;
    assert_aborted_at(&c, lagging, status, point);
    let events = assert_crashed_after_a_newer_snapshot(&c, lagging);
    let real_ms = |name: &str| {
        let e = events
            .iter()
            .rev()
            .find(|e| e["ev"] == "crash_point" && e["name"] == name);
        e.and_then(|e| e["real_ms"].as_u64()).unwrap()
    };
    let (held_at, crashed_at) = (real_ms(hold), real_ms(point));
    assert!(
        crashed_at >= held_at + INSTALL_HOLD_MS,
        "{point} reached {} ms into the install's hold: by work from before the install",
        crashed_at - held_at
    );
    let taken_after_hold = events
        .iter()
        .skip_while(|e| e["name"] != hold)
        .any(|e| e["ev"] == "snapshot" && e["action"] == "taken");
    assert!(
        !taken_after_hold,
        "{point}: not the first after the install"
    );
    c.set_flags(lagging, &FLAGS);
    recover_and_check(&http, &mut c, &[lagging], lagging, point).await;
}

/// Raft adopted the snapshot, nothing written yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_saving_an_installed_snapshot_recovers() {
    crash_while_installing("snapshot.install.before-save").await;
}

/// The leader's snapshot saved, the log not yet rewritten: the snapshot is
/// newer than the log's hard state (etcd #5664's order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_an_installed_snapshot_and_the_log_rewrite_recovers() {
    crash_while_installing("snapshot.install.before-log-rewrite").await;
}

/// The log rewritten after the install, the old segments not yet removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_log_rewrite_recovers() {
    crash_while_installing("snapshot.install.after-log-rewrite").await;
}

/// The first snapshot after an install starts a new block store
/// generation (FAB-18244 on that path): blocks durable, no manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_first_block_store_append_after_an_install_recovers() {
    let hold = "snapshot.install.after-log-rewrite";
    crash_after_an_install(hold, "blockstore.append.after-sync").await;
}

/// The first manifest after an install renamed into place, not synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_first_manifest_rename_after_an_install_recovers() {
    let hold = "snapshot.install.after-log-rewrite";
    crash_after_an_install(hold, "snapshot.take.before-dir-fsync").await;
}

/// The install's log rewrite handed every older segment over for
/// removal; none removed yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_removing_the_segments_an_install_replaced_recovers() {
    let hold = "snapshot.install.before-log-rewrite";
    crash_after_an_install(hold, "wal.compact.before-remove").await;
}

/// A follower dies right after applying the configuration that adds a
/// fourth node; restarted, it replays the change, and the new node
/// catches up with everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_applying_a_conf_change_recovers() {
    let point = "conf.apply.after";
    let http = http();
    let (mut c, leader) = cluster(&http).await;
    let follower = (leader + 1) % 3;
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 10)).await;
    arm(&http, &c, follower, json!({"name": point})).await;
    add_fourth(&http, &mut c, leader).await;
    let status = wait_exit(&mut c, follower).await;
    assert_aborted_at(&c, follower, status, point);
    recover_and_check(&http, &mut c, &[follower], follower, point).await;
}

/// The joining node dies as it applies a configuration change (its
/// promotion at the latest); restarted, it is a voter like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_crashing_before_applying_a_conf_change_recovers() {
    let point = "conf.apply.before";
    let http = http();
    let (mut c, leader) = cluster(&http).await;
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 10)).await;
    let new = c.add_node().unwrap();
    wait_status(&http, &c, new, "serving", |_| true).await;
    arm(&http, &c, new, json!({"name": point})).await;
    let id = new + 1;
    for change in [
        json!({"op": "add", "id": id, "addr": c.peer_addr(new)}),
        json!({"op": "promote", "id": id}),
    ] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = http
                .post(format!("{}/members", c.url(leader)))
                .json(&json!({"changes": [change]}))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 200 || c.wait_exit(new, Duration::ZERO).is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{change}: {}",
                r.text().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let status = wait_exit(&mut c, new).await;
    assert_aborted_at(&c, new, status, point);
    recover_and_check(&http, &mut c, &[new], new, point).await;
}

/// An election while a follower is armed at `point`, at the hard state's
/// fsync: it dies saving the new term (and its vote), with the old leader
/// down too; both restarted, the cluster recovers.
async fn crash_in_an_election(point: &str) {
    let http = http();
    let (mut c, leader) = cluster(&http).await;
    let follower = (leader + 1) % 3;
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 10)).await;
    arm(&http, &c, follower, json!({"name": point})).await;
    c.kill(leader);
    let status = wait_exit(&mut c, follower).await;
    assert_aborted_at(&c, follower, status, point);
    recover_and_check(&http, &mut c, &[leader, follower], follower, point).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_saving_a_new_term_recovers() {
    crash_in_an_election("wal.hard-state.before-fsync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_saving_a_new_term_recovers() {
    crash_in_an_election("wal.hard-state.after-fsync").await;
}

/// `sleep` holds the thread and goes on: the node stays up, the point is
/// disarmed after firing, and the trace says where it slept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_point_holds_the_thread_and_the_node_goes_on() {
    let point = "wal.append.before-fsync";
    let http = http();
    let (mut c, leader) = cluster(&http).await;
    let follower = (leader + 1) % 3;
    let body = json!({"name": point, "action": "sleep", "sleep_ms": 300});
    let armed = arm(&http, &c, follower, body).await;
    assert_eq!(armed["sleep_ms"], 300);
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 10)).await;
    converge(&http, &c).await;
    let list: Value = http
        .get(format!("{}/crash-points", c.url(follower)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view = list["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == point)
        .unwrap();
    assert_eq!((&view["fired"], &view["armed"]), (&json!(1), &json!(false)));
    assert!(view["reached"].as_u64() > Some(1), "{view}");
    let traces = stop_and_read(&mut c);
    let events = &traces[follower];
    let at = events
        .iter()
        .position(|e| e["ev"] == "crash_point")
        .expect("the crash_point event");
    assert_eq!(
        (
            &events[at]["action"],
            &events[at]["sleep_ms"],
            &events[at]["thread"]
        ),
        (&json!("sleep"), &json!(300), &json!("raft"))
    );
    assert!(events[at + 1..].iter().any(|e| e["ev"] == "persist"));
    assert_eq!(divergences(&digests(&traces)), Vec::<String>::new());
}

/// `panic` on each thread that holds crash points takes the node down
/// (non-zero exit, the panic in its log), and it recovers when restarted.
/// A panicking snapshot thread used to go unnoticed: the node ran on and
/// never took a snapshot again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_any_node_thread_stops_the_node_and_it_recovers() {
    let http = http();
    for (point, thread) in [
        ("snapshot.take.after-write", "snapshot"),
        ("wal.compact.before-remove", "wal-segments"),
        ("conf.apply.before", "raft"),
    ] {
        let (mut c, leader) = cluster(&http).await;
        let follower = (leader + 1) % 3;
        let body = json!({"name": point, "action": "panic"});
        arm(&http, &c, follower, body).await;
        let load = Load::start(&http, &c, &[leader], "load-");
        if point.starts_with("conf.") {
            add_fourth(&http, &mut c, leader).await;
        }
        let status = wait_exit(&mut c, follower).await;
        load.stop().await;
        let log = c.log(follower);
        assert!(
            !status.success() && status.signal().is_none(),
            "{point}: {status:?}\n{log}"
        );
        let says = format!("thread '{thread}' (");
        let panicked = log.contains(&says) && log.contains("panicked");
        assert!(panicked && log.contains(point), "{point}\n{log}");
        let events = read_trace(&c.trace_path(follower));
        let fired = events
            .iter()
            .rev()
            .find(|e| e["ev"] == "crash_point")
            .unwrap();
        assert_eq!(
            (&fired["action"], &fired["thread"]),
            (&json!("panic"), &json!(thread))
        );
        recover_and_check(&http, &mut c, &[follower], follower, point).await;
    }
}

/// The client API: every point listed with its hits; unknown names
/// refused by name (404), bad armings refused (400); disarming one or all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_arms_refuses_and_disarms() {
    let http = http();
    let (c, leader) = cluster(&http).await;
    submit_bodies_to(&http, &c, &[leader], register_writes("a", 30)).await;
    let url = format!("{}/crash-points", c.url(leader));
    let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let points = list["points"].as_array().unwrap();
    let names: Vec<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let catalogue: Vec<&str> = node::crash_points::Point::ALL
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(names, catalogue);
    let reached = |name: &str| {
        let p = points.iter().find(|p| p["name"] == name).unwrap();
        p["reached"].as_u64().unwrap()
    };
    for name in [
        "wal.append.before-fsync",
        "wal.append.after-fsync",
        "blockstore.append.after-sync",
        "snapshot.take.before-rename",
    ] {
        assert!(reached(name) > 0, "{name}: {list}");
    }
    assert_eq!(reached("snapshot.install.before-save"), 0);
    let arm = |body: Value| post(&http, &c, leader, "/crash-points", body);
    let (s, a) = arm(json!({"name": "wal.nowhere", "action": "sleep"})).await;
    assert_eq!(s, 404, "{a}");
    assert!(
        a["error"].as_str().unwrap().contains("`wal.nowhere`"),
        "{a}"
    );
    for bad in [
        json!({"name": "conf.apply.after", "action": "sleep"}),
        json!({"name": "conf.apply.after", "action": "explode"}),
        json!({"name": "conf.apply.after", "hit": 0}),
        json!({"name": "conf.apply.after", "sleep_ms": 5}),
        json!({"name": "conf.apply.after", "when": "now"}),
        json!({"action": "abort"}),
    ] {
        let (s, a) = arm(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {a}");
    }
    let (s, a) = arm(json!({"name": "conf.apply.after", "hit": 3})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["fires_at_reached"], a["reached"].as_u64().unwrap() + 3);
    let (s, _) = arm(json!({"name": "conf.apply.before", "action": "sleep", "sleep_ms": 1})).await;
    assert_eq!(s, 200);
    let delete = |path: String| {
        let http = http.clone();
        async move {
            let r = http.delete(path).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, a) = delete(format!("{url}/conf.apply.after")).await;
    assert_eq!((s, &a["was_armed"]), (200, &json!(true)), "{a}");
    let (s, a) = delete(format!("{url}/conf.apply.after")).await;
    assert_eq!((s, &a["was_armed"]), (200, &json!(false)), "{a}");
    let (s, a) = delete(format!("{url}/wal.nowhere")).await;
    assert_eq!(s, 404, "{a}");
    let (s, a) = delete(url.clone()).await;
    assert_eq!((s, &a["disarmed"]), (200, &json!(1)), "{a}");
    let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let armed = list["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["armed"] == true)
        .count();
    assert_eq!(armed, 0);
}

/// `ordeal-node crash-points` prints the catalogue, one name a line, and
/// docs/crash-points.md documents every name.
#[test]
fn the_catalogue_is_listed_and_documented() {
    let out = std::process::Command::new(EXE)
        .arg("crash-points")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text.lines().collect();
    let catalogue: Vec<&str> = node::crash_points::Point::ALL
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(names, catalogue);
    assert!(names.len() >= 10);
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/crash-points.md");
    let doc = std::fs::read_to_string(&doc).unwrap();
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is not in docs/crash-points.md"
        );
    }
}
