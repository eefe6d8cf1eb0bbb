//! Group commit (issue 33): the leader cuts a block as soon as its
//! proposal pipeline is idle; count, bytes and the batch timeout stay
//! upper bounds, and the in-flight limit still holds. Real processes.

use super::{chain, converge, http, read_trace, EXE};
use node::bench::LocalCluster;
use node::ledger::Block;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A batch timeout no lone transaction should wait for with group commit.
const LONG_TIMEOUT_MS: u64 = 3000;

/// Submits `body` to `url` once; it must be ordered. How long it took.
async fn timed_submit(http: &reqwest::Client, url: &str, body: &Value) -> Duration {
    let started = Instant::now();
    let r = http
        .post(format!("{url}/submit"))
        .json(body)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());
    took
}

/// The fix itself: with a batch timeout of 3 s, a lone transaction on an
/// idle leader (submitted to it, or forwarded by a follower) is ordered
/// well before the timer would cut it. Fails before group commit: each
/// took the whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_transaction_on_an_idle_leader_is_cut_before_the_batch_timeout() {
    let timeout = LONG_TIMEOUT_MS.to_string();
    let cluster =
        LocalCluster::start(Path::new(EXE), 3, &["--batch-timeout-ms", &timeout]).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    let follower = (leader + 1) % cluster.len();
    let bound = Duration::from_millis(LONG_TIMEOUT_MS / 3);
    for (n, node) in [leader, follower, leader].into_iter().enumerate() {
        let body = json!({"id": format!("lone{n}"), "payload": "p"});
        let took = timed_submit(&http, &cluster.url(node), &body).await;
        assert!(
            took < bound,
            "lone transaction {n} (to node {}) took {took:?}: it waited for the {LONG_TIMEOUT_MS} ms timer",
            node + 1
        );
    }
    // One block each: nothing else was pending when they were cut.
    converge(&http, &cluster).await;
    let blocks = chain(&http, &cluster.url(leader)).await;
    let sizes: Vec<usize> = blocks[1..].iter().map(|b| b.txs.len()).collect();
    assert_eq!(sizes, vec![1, 1, 1], "{sizes:?}");
}

/// The opt-out: `--cut-when-idle false` restores Fabric's timer-only
/// cutting, so a lone transaction waits for the batch timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cut_when_idle_false_a_lone_transaction_waits_for_the_timer() {
    let flags = ["--batch-timeout-ms", "1500", "--cut-when-idle", "false"];
    let cluster = LocalCluster::start(Path::new(EXE), 1, &flags).unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    let body = json!({"id": "timer", "payload": "p"});
    let took = timed_submit(&http, &cluster.url(0), &body).await;
    assert!(
        took >= Duration::from_millis(1500),
        "ordered after {took:?}, before the timer"
    );
}

/// `workers` concurrent clients, client `w` to node `w % len`, each
/// submitting `per_worker` transactions with `payload_bytes` of payload in
/// turn; every one must be ordered.
async fn load(c: &LocalCluster, prefix: &str, workers: usize, per_worker: usize, bytes: usize) {
    let http = http();
    let clients: Vec<_> = (0..workers)
        .map(|w| {
            let (http, url) = (http.clone(), c.url(w % c.len()));
            let prefix = format!("{prefix}{w}-");
            tokio::spawn(async move {
                for k in 0..per_worker {
                    let body = json!({"id": format!("{prefix}{k}"), "payload": "z".repeat(bytes)});
                    timed_submit(&http, &url, &body).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

/// The blocks holding transactions whose id starts with `prefix`.
fn blocks_of<'a>(blocks: &'a [Block], prefix: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    blocks
        .iter()
        .filter(move |b| b.txs.iter().any(|t| t.id.starts_with(prefix)))
}

/// Under load, transactions gather while a block commits and blocks still
/// fill up to the count (small transactions) and to the preferred bytes
/// (large ones), never past either; the timer is far away (3 s), so only
/// group commit and those two rules cut here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_blocks_still_fill_up_to_the_count_and_the_bytes() {
    const COUNT: usize = 8;
    const PREFERRED: usize = 2000;
    let timeout = LONG_TIMEOUT_MS.to_string();
    let (count, preferred) = (COUNT.to_string(), PREFERRED.to_string());
    let flags = [
        "--batch-timeout-ms",
        &timeout,
        "--max-message-count",
        &count,
        "--preferred-max-bytes",
        &preferred,
    ];
    let cluster = LocalCluster::start(Path::new(EXE), 3, &flags).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    // ~130 bytes each: the count binds. ~580: the bytes bind at 3.
    load(&cluster, "small", 48, 8, 100).await;
    load(&cluster, "large", 48, 4, 550).await;
    converge(&http, &cluster).await;
    let blocks = chain(&http, &cluster.url(leader)).await;
    let small: Vec<usize> = blocks_of(&blocks, "small").map(|b| b.txs.len()).collect();
    assert!(small.iter().all(|&n| n <= COUNT), "{small:?}");
    assert!(
        small.contains(&COUNT),
        "no block reached the count under load: {small:?}"
    );
    assert!(small.len() < 48 * 8 / 2, "barely batched: {small:?}");
    let large: Vec<(usize, usize)> = blocks_of(&blocks, "large")
        .map(|b| (b.txs.len(), b.txs.iter().map(|t| t.size_bytes()).sum()))
        .collect();
    assert!(large.iter().all(|&(_, b)| b <= PREFERRED), "{large:?}");
    assert!(
        large.iter().any(|&(n, _)| n == 3),
        "no block filled to the preferred bytes under load: {large:?}"
    );
}

/// The in-flight limit holds with group commit: in the leader's trace, at
/// every persist, the blocks it appended and had not yet applied number
/// at most `--max-inflight-blocks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_leader_keeps_to_the_in_flight_limit() {
    const MAX_INFLIGHT: usize = 2;
    let max = MAX_INFLIGHT.to_string();
    // One transaction a block: the count cuts whenever the pipeline is
    // busy, so the limit, not the cutter, holds the rest back.
    let flags = ["--max-inflight-blocks", &max, "--max-message-count", "1"];
    let cluster = LocalCluster::start_traced(Path::new(EXE), 3, &flags, true).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    load(&cluster, "f", 32, 6, 100).await;
    converge(&http, &cluster).await;
    let trace = read_trace(&cluster.trace_path(leader));
    let most = most_in_flight(&trace);
    assert!(
        most <= MAX_INFLIGHT,
        "{most} blocks appended and not applied at once on the leader"
    );
    assert!(most >= 1, "the leader's trace shows no block proposed");
}

/// The most blocks a node appended as leader and had not applied at any
/// of its persists, from its trace.
fn most_in_flight(trace: &[Value]) -> usize {
    let with_block: BTreeSet<u64> = trace
        .iter()
        .filter(|e| e["ev"] == "apply" && !e["block"].is_null())
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    let (mut leading, mut applied, mut most) = (false, 0, 0);
    for e in trace {
        match e["ev"].as_str().unwrap() {
            "role" => leading = e["role"] == "leader",
            "apply" => applied = e["index"].as_u64().unwrap(),
            "persist" if leading => {
                // A persist of hard state alone may follow applies.
                let last = e["last_index"].as_u64().unwrap();
                let unapplied = with_block.range(applied + 1..).take_while(|&&i| i <= last);
                most = most.max(unapplied.count());
            }
            _ => {}
        }
    }
    most
}
