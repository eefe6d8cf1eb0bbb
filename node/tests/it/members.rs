//! Consenter-set changes and leader transfer (issue 14) on real processes.

use super::{chain, converge_some, http, read_trace, status, submit_many, submit_many_to, EXE};
use node::bench::LocalCluster;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// POSTs `body` to `path` on node `i`; the status and the JSON answer.
pub(super) async fn post(
    http: &reqwest::Client,
    c: &LocalCluster,
    i: usize,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = http
        .post(format!("{}{path}", c.url(i)))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn change(op: &str, id: u64, addr: Option<String>) -> Value {
    json!({"changes": [{"op": op, "id": id, "addr": addr}]})
}

/// Waits until node `i` reports `field` satisfying `ok`.
pub(super) async fn wait_status(
    http: &reqwest::Client,
    c: &LocalCluster,
    i: usize,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = status(http, &c.url(i)).await {
            if ok(&s) {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {}: never {what}\n{}",
            i + 1,
            c.log(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs a membership change until it is applied, while it is refused
/// with 409 (a learner not caught up yet, a change in flight); the answer.
async fn retry_while_refused(
    http: &reqwest::Client,
    c: &LocalCluster,
    leader: usize,
    body: Value,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, answer) = post(http, c, leader, "/members", body.clone()).await;
        if s == 200 {
            return answer;
        }
        assert_eq!(s, 409, "{body}: {answer}");
        let why = answer["error"].as_str().unwrap();
        assert!(
            why.contains("caught up") || why.contains("in flight"),
            "{answer}"
        );
        assert!(Instant::now() < deadline, "{body}: still refused: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn members(http: &reqwest::Client, c: &LocalCluster, i: usize) -> Value {
    let r = http
        .get(format!("{}/members", c.url(i)))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// Bad membership requests get clear errors and change nothing.
async fn bad_requests_are_refused(http: &reqwest::Client, c: &LocalCluster, leader: usize) {
    let follower = (leader + 1) % 3;
    let leader_id = leader as u64 + 1;
    let cases = [
        (
            follower,
            "/members",
            change("remove", 2, None),
            421,
            "does not lead",
        ),
        (
            leader,
            "/members",
            change("remove", 9, None),
            404,
            "node 9 is not a member",
        ),
        (
            leader,
            "/members",
            change("add", 9, None),
            400,
            "needs `addr`",
        ),
        (
            leader,
            "/members",
            change("add", 2, Some("h:1".into())),
            400,
            "already a member",
        ),
        (
            leader,
            "/members",
            change("promote", 9, None),
            400,
            "not a learner",
        ),
        (
            leader,
            "/members",
            change("remove", leader_id, None),
            409,
            "transfer leadership first",
        ),
        (
            leader,
            "/members",
            json!({"changes": []}),
            400,
            "1 to 8 changes",
        ),
        (
            leader,
            "/members",
            json!({"change": 1}),
            400,
            "unknown field",
        ),
        (leader, "/transfer", json!({"to": 9}), 404, "not a voter"),
        (
            leader,
            "/transfer",
            json!({"to": leader_id}),
            400,
            "already leads",
        ),
    ];
    for (i, path, body, want, says) in cases {
        let (got, answer) = post(http, c, i, path, body.clone()).await;
        assert_eq!(got, want, "{path} {body}: {answer}");
        let text = answer["error"].as_str().unwrap_or_default();
        assert!(text.contains(says), "{path} {body}: {answer}");
    }
    assert_eq!(members(http, c, leader).await["voters"], json!([1, 2, 3]));
}

/// Issue 14: a new node joins as a learner, catches up, is promoted; a
/// follower is removed; the leader hands over and is removed. Every step
/// is applied on the members and shows in their traces as `conf`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_catches_up_is_promoted_and_members_leave() {
    let mut c = LocalCluster::start_traced(Path::new(EXE), 3, &[], true).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 20).await;
    bad_requests_are_refused(&http, &c, leader).await;

    let new = c.add_node().unwrap();
    let add = change("add", 4, Some(c.peer_addr(new)));
    let (a, b) = tokio::join!(
        post(&http, &c, leader, "/members", add.clone()),
        post(&http, &c, leader, "/members", add)
    );
    let mut answers = [a, b];
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[0].1["learners"], json!([4]), "{answers:?}");
    assert!(
        answers[1].0 == 409 || answers[1].0 == 400,
        "the second add is refused: {answers:?}"
    );
    // Promotion waits for the log.
    let promoted = retry_while_refused(&http, &c, leader, change("promote", 4, None)).await;
    assert_eq!(promoted["voters"], json!([1, 2, 3, 4]));
    submit_many(&http, &c, "b", 10).await;
    let all: Vec<usize> = (0..4).collect();
    let height = converge_some(&http, &c, &all).await;
    assert!(height >= 3);
    assert_eq!(
        chain(&http, &c.url(new)).await,
        chain(&http, &c.url(leader)).await
    );
    assert_eq!(
        wait_status(&http, &c, new, "counts 4 voters", |s| s["cluster_size"]
            == 4)
        .await["id"],
        4
    );

    // Remove a follower (a founder).
    let gone = (0..3).find(|&i| i != leader).unwrap();
    let (s, answer) = post(
        &http,
        &c,
        leader,
        "/members",
        change("remove", gone as u64 + 1, None),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    c.kill(gone);
    // Hand leadership to the new node, then remove the old leader.
    let (s, answer) = post(&http, &c, leader, "/transfer", json!({"to": 4})).await;
    assert_eq!(s, 200, "{answer}");
    wait_status(&http, &c, new, "leads", |s| s["role"] == "leader").await;
    let (s, answer) = post(
        &http,
        &c,
        new,
        "/members",
        change("remove", leader as u64 + 1, None),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    let left = (0..3).find(|&i| i != leader && i != gone).unwrap();
    let m = members(&http, &c, new).await;
    let mut want = vec![left as u64 + 1, 4];
    want.sort_unstable();
    assert_eq!(m["voters"], json!(want), "{m}");
    // The removed leader learnt it (it applied its own removal before
    // handing over the log) or is out of the picture; submits go on.
    submit_many_to(&http, &c, &[left, new], "c", 10).await;
    converge_some(&http, &c, &[left, new]).await;
    let old = wait_status(&http, &c, leader, "applies its removal", |s| {
        s["removed"] == true
    })
    .await;
    assert_eq!(old["role"], "follower");
    let (s, answer) = post(
        &http,
        &c,
        leader,
        "/submit",
        json!({"id": "late", "payload": "x"}),
    )
    .await;
    assert_eq!(s, 410, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("removed"),
        "{answer}"
    );
    for i in [left, new, leader] {
        c.terminate(i);
    }
    let confs: Vec<String> = read_trace(&c.trace_path(new))
        .into_iter()
        .filter(|e| e["ev"] == "conf")
        .map(|e| e["change"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        confs,
        [
            "add 4",
            "promote 4",
            format!("remove {}", gone + 1).as_str(),
            format!("remove {}", leader + 1).as_str()
        ]
    );
}

/// Issue 14 (Fabric's eviction suspicion): a follower removed while it was
/// down comes back, hears from the leader that it was removed, and halts —
/// no election, no new term, its submits refused — while the members go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_while_away_comes_back_and_halts() {
    let mut c = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 10).await;
    let away = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    c.kill(away);
    let (s, answer) = post(
        &http,
        &c,
        leader,
        "/members",
        change("remove", away as u64 + 1, None),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    submit_many_to(&http, &c, &[leader, other], "b", 10).await;
    let term = status(&http, &c.url(leader)).await.unwrap()["term"].clone();
    c.restart(away).unwrap();
    let back = wait_status(&http, &c, away, "halts", |s| s["removed"] == true).await;
    assert_eq!(back["role"], "follower", "{back}");
    let (s, answer) = post(
        &http,
        &c,
        away,
        "/submit",
        json!({"id": "x", "payload": "x"}),
    )
    .await;
    assert_eq!(s, 410, "{answer}");
    // Several election timeouts later: still no campaign, same leader and term.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = status(&http, &c.url(leader)).await.unwrap();
    assert_eq!(
        (&now["role"], &now["term"]),
        (&json!("leader"), &term),
        "{now}"
    );
    assert_eq!(
        status(&http, &c.url(away)).await.unwrap()["term"],
        back["term"]
    );
    submit_many_to(&http, &c, &[leader, other], "c", 5).await;
    assert!(
        c.log(away).contains("eviction"),
        "the node says why it halted"
    );
}

/// Issue 14: a node added after the log was compacted catches up by
/// snapshot (which carries the configuration), is promoted, and after a
/// restart of every node (founders given every member's address) the
/// configuration is the same everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_after_compaction_catches_up_by_snapshot() {
    let flags = [
        "--snapshot-interval-bytes",
        "300",
        "--snapshot-catchup-entries",
        "2",
    ];
    let mut c = LocalCluster::start(Path::new(EXE), 3, &flags).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 60).await;
    wait_status(&http, &c, leader, "compacts", |s| {
        s["compactions"].as_u64() > Some(0)
    })
    .await;
    let new = c.add_node().unwrap();
    let (s, answer) = post(
        &http,
        &c,
        leader,
        "/members",
        change("add", 4, Some(c.peer_addr(new))),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    let got = wait_status(&http, &c, new, "installs a snapshot", |s| {
        s["snapshots_installed"].as_u64() > Some(0)
    })
    .await;
    assert!(got["height"].as_u64() > Some(0), "{got}");
    retry_while_refused(&http, &c, leader, change("promote", 4, None)).await;
    submit_many(&http, &c, "b", 10).await;
    let all: Vec<usize> = (0..4).collect();
    converge_some(&http, &c, &all).await;
    for i in 0..4 {
        c.kill(i);
    }
    for i in 0..4 {
        c.restart(i).unwrap();
    }
    c.wait_leader(&http).await.unwrap();
    for i in 0..4 {
        assert_eq!(
            members(&http, &c, i).await["voters"],
            json!([1, 2, 3, 4]),
            "node {}",
            i + 1
        );
    }
    submit_many(&http, &c, "c", 5).await;
    converge_some(&http, &c, &all).await;
    assert_eq!(
        chain(&http, &c.url(new)).await,
        chain(&http, &c.url(0)).await
    );
}

/// Issue 14: a request of two changes (adding two learners, promoting
/// both) goes through a joint configuration, which raft leaves by itself;
/// every node ends with five voters and no outgoing ones, and the trace
/// shows each `leave joint`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_voters_change_through_a_joint_configuration() {
    let mut c = LocalCluster::start_traced(Path::new(EXE), 3, &[], true).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 5).await;
    let (four, five) = (c.add_node().unwrap(), c.add_node().unwrap());
    let add = json!({"changes": [
        {"op": "add", "id": 4, "addr": c.peer_addr(four)},
        {"op": "add", "id": 5, "addr": c.peer_addr(five)},
    ]});
    let (s, answer) = post(&http, &c, leader, "/members", add).await;
    assert_eq!((s, &answer["learners"]), (200, &json!([4, 5])), "{answer}");
    let promote = json!({"changes": [{"op": "promote", "id": 4}, {"op": "promote", "id": 5}]});
    let joint = retry_while_refused(&http, &c, leader, promote).await;
    assert_eq!(joint["change"], "promote 4, promote 5", "{joint}");
    let all: Vec<usize> = (0..5).collect();
    submit_many(&http, &c, "b", 5).await;
    converge_some(&http, &c, &all).await;
    for i in all {
        let m = members(&http, &c, i).await;
        assert_eq!(
            (&m["voters"], &m["voters_outgoing"]),
            (&json!([1, 2, 3, 4, 5]), &json!([])),
            "node {}: {m}",
            i + 1
        );
    }
    for i in 0..5 {
        c.terminate(i);
    }
    let changes: Vec<Value> = read_trace(&c.trace_path(five))
        .into_iter()
        .filter(|e| e["ev"] == "conf")
        .map(|e| e["change"].clone())
        .collect();
    let want = [
        "add 4, add 5",
        "leave joint",
        "promote 4, promote 5",
        "leave joint",
    ];
    assert_eq!(changes, want.map(|w| json!(w)));
}

/// Issue 20, item 1 (a joining node halted itself): at the node's default
/// snapshot interval nothing is compacted, so node 5 catches up by
/// replaying the log from its start and applies "add 4" — a configuration
/// that does not name it yet — before the one that adds it. A node is
/// removed only by a configuration applied after it was a member: node 5
/// serves submits (not 410), ticks (as leader after a transfer it keeps
/// its term through several election timeouts: its heartbeats go out) and
/// the cluster takes writes through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_after_another_replays_its_change_and_still_serves_and_leads() {
    let mut c = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 10).await;
    for id in [4u64, 5] {
        let new = c.add_node().unwrap();
        let add = change("add", id, Some(c.peer_addr(new)));
        let (s, answer) = post(&http, &c, leader, "/members", add).await;
        assert_eq!(s, 200, "{answer}");
        retry_while_refused(&http, &c, leader, change("promote", id, None)).await;
    }
    let five = 4;
    let s = wait_status(&http, &c, five, "counts 5 voters", |s| {
        s["cluster_size"] == 5
    })
    .await;
    assert_eq!(s["removed"], false, "{s}\n{}", c.log(five));
    let body = json!({"id": "via-5", "payload": "x"});
    let (code, answer) = post(&http, &c, five, "/submit", body).await;
    assert_eq!(code, 200, "{answer}\n{}", c.log(five));
    let (code, answer) = post(&http, &c, leader, "/transfer", json!({"to": 5})).await;
    assert_eq!(code, 200, "{answer}");
    let led = wait_status(&http, &c, five, "leads", |s| s["role"] == "leader").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = status(&http, &c.url(five)).await.unwrap();
    assert_eq!(
        (&now["role"], &now["term"]),
        (&json!("leader"), &led["term"]),
        "{now}\n{}",
        c.log(five)
    );
    submit_many(&http, &c, "b", 10).await;
    let all: Vec<usize> = (0..5).collect();
    converge_some(&http, &c, &all).await;
    assert_eq!(
        chain(&http, &c.url(five)).await,
        chain(&http, &c.url(leader)).await
    );
}
