//! End-to-end tests of `ordeal-node`: real processes on loopback, real
//! fsync, real SIGKILL.

use node::bench::LocalCluster;
use node::ledger::{Block, Ledger};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const EXE: &str = env!("CARGO_BIN_EXE_ordeal-node");

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(6))
        .build()
        .unwrap()
}

async fn chain(http: &reqwest::Client, url: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let page: Value = http
            .get(format!("{url}/blocks?from={}&limit=1000", blocks.len()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got: Vec<Block> = serde_json::from_value(page["blocks"].clone()).unwrap();
        if got.is_empty() {
            return blocks;
        }
        blocks.extend(got);
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(format!("{url}/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    let r = http.get(format!("{url}/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

/// Submits `body` to the node at `url`; it must be ordered (200).
async fn submit_ordered(http: &reqwest::Client, url: &str, body: &Value) {
    let r = http
        .post(format!("{url}/submit"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "{}: {status} {}",
        body["id"],
        r.text().await.unwrap()
    );
}

/// Waits until every node reports the same ledger height.
async fn converge(http: &reqwest::Client, c: &LocalCluster) -> u64 {
    let all: Vec<usize> = (0..c.len()).collect();
    converge_some(http, c, &all).await
}

/// Waits until nodes `nodes` report the same ledger height.
async fn converge_some(http: &reqwest::Client, c: &LocalCluster, nodes: &[usize]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    loop {
        let mut heights = BTreeSet::new();
        for &i in nodes {
            heights.insert(
                status(http, &c.url(i))
                    .await
                    .map_or(0, |s| s["height"].as_u64().unwrap()),
            );
        }
        if heights.len() == 1 && !heights.contains(&0) {
            // Equal twice in a row, so that no block was in flight.
            let h = *heights.first().unwrap();
            if last == Some(h) {
                return h;
            }
            last = Some(h);
        } else {
            last = None;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: heights {heights:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Raft paper §5.3–5.4: entries acknowledged as committed survive the loss
/// of the leader, and every node applies the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transactions_survive_a_leader_kill() {
    let mut cluster = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..20usize {
        let (http, urls, acked, submitted) =
            (http.clone(), urls.clone(), acked.clone(), submitted.clone());
        workers.push(tokio::spawn(async move {
            for k in 0..50usize {
                let n = w * 50 + k;
                let id = format!("tx-{n}");
                let body = json!({"id": id, "payload": format!("payload {n}"), "ack": "committed"});
                // A refusal that says it was not ordered (no leader yet
                // after the kill, on a loaded machine) is retried a while,
                // so that the count below does not race the election.
                for _attempt in 0..40 {
                    let answer = http
                        .post(format!("{}/submit", urls[n % 3]))
                        .json(&body)
                        .send()
                        .await;
                    let Ok(r) = answer else { break };
                    if r.status().is_success() {
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v["id"], id);
                        assert!(v["block"].as_u64().unwrap() >= 1);
                        acked.lock().await.push(id);
                        break;
                    }
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if v["retryable"] != true {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    while submitted.load(std::sync::atomic::Ordering::SeqCst) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart(leader).unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= 700,
        "only {} of 1000 acknowledged",
        acked.len()
    );
    // The restarted node may still be recovering on a busy machine: ask
    // until it answers, for a bounded time.
    let mut restarted = None;
    for _ in 0..100 {
        restarted = status(&http, &cluster.url(leader)).await;
        if restarted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = restarted.expect("the restarted node answers /status within 20 s");
    assert_eq!(
        restarted["restarts"], 1,
        "the killed node reports its restart"
    );
    converge(&http, &cluster).await;
    let chains = [
        chain(&http, &urls[0]).await,
        chain(&http, &urls[1]).await,
        chain(&http, &urls[2]).await,
    ];
    assert_eq!(chains[0], chains[1], "nodes 1 and 2 disagree");
    assert_eq!(chains[0], chains[2], "nodes 1 and 3 disagree");
    Ledger::from_blocks(chains[0].clone()).expect("a valid hash chain");
    let headers: Value = http
        .get(format!("{}/blocks?from=0&limit=1000&headers=true", urls[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers = headers["blocks"].as_array().unwrap();
    assert_eq!(headers.len(), chains[0].len().min(1000));
    for (h, b) in headers.iter().zip(&chains[0]) {
        assert!(h.get("txs").is_none(), "a header carries no transactions");
        assert_eq!(h["number"], b.number);
        assert_eq!(h["hash"], hex::encode(b.hash));
        assert_eq!(h["data_hash"], hex::encode(b.data_hash));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for tx in chains[0].iter().flat_map(|b| &b.txs) {
        *seen.entry(&tx.id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            seen.get(id.as_str()),
            Some(&1),
            "acknowledged {id} must be in the ledger exactly once"
        );
    }
    assert!(seen.values().all(|&n| n == 1), "no transaction twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_submits_are_refused_retryably_and_sigterm_exits_cleanly() {
    let mut cluster = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    cluster.kill(1);
    cluster.kill(2);
    // check-quorum makes a leader without followers step down.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = http
        .post(format!("{}/submit", cluster.url(0)))
        .json(&json!({"id": "lonely"}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(code == 503 || code == 504, "got {code} {body}");
    if code == 503 {
        assert_eq!(body["retryable"], true);
    }
    let exit = cluster.terminate(0).unwrap();
    assert!(exit.success(), "SIGTERM exit: {exit:?}\n{}", cluster.log(0));
    assert!(cluster.log(0).contains("write-ahead log synced"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_compact_the_log_and_a_restarted_node_recovers_from_them() {
    let mut cluster =
        LocalCluster::start(Path::new(EXE), 3, &["--snapshot-interval-bytes", "2000"]).unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    for n in 0..60 {
        let body = json!({"id": format!("s{n}"), "payload": "y".repeat(100), "ops": [{"op": "write", "key": "k", "value": n}]});
        submit_ordered(&http, &cluster.url(n % 3), &body).await;
    }
    let height = converge(&http, &cluster).await;
    let metrics = metrics_text(&http, &cluster.url(2)).await;
    assert!(
        !metrics.contains("consensus_etcdraft_snapshot_block_number 0\n"),
        "a snapshot was taken:\n{metrics}"
    );
    // The snapshot file is a manifest; the blocks are in the block store.
    let dir = cluster.data_dir(2);
    let stores: Vec<u64> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("blocks."))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let snapshot_len = std::fs::metadata(dir.join("snapshot.bin")).unwrap().len();
    assert!(
        stores.len() == 1 && stores[0] > 5 * snapshot_len,
        "block stores {stores:?}, snapshot file {snapshot_len} bytes"
    );
    cluster.kill(2);
    cluster.restart(2).unwrap();
    converge(&http, &cluster).await;
    let chain2 = chain(&http, &cluster.url(2)).await;
    assert_eq!(chain2.len() as u64, height);
    assert_eq!(chain2, chain(&http, &cluster.url(0)).await);
    // The restarted node may not know the leader yet (503, retryable), or
    // lose it while a forwarded read waits (504, outcome unknown: on a
    // loaded machine its election timer may fire before the leader's first
    // heartbeat reaches it). A read is safe to retry after either.
    let mut v = Value::Null;
    for attempt in 0..50 {
        let body = json!({"id": format!("r{attempt}"), "ops": [{"op": "read", "key": "k"}]});
        let read = http
            .post(format!("{}/submit", cluster.url(2)))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = read.status();
        v = read.json().await.unwrap();
        if status.is_success() {
            break;
        }
        let unknown = status == reqwest::StatusCode::GATEWAY_TIMEOUT;
        assert!(v["retryable"] == true || unknown, "{status}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(v["results"][0]["value"], 59, "{v}");
}

/// The nodes of a cluster apply the same bytes at the same moments; were
/// their snapshot intervals in step, all would write a snapshot at once and
/// every commit would wait on a node that is writing one. Each node's
/// interval starts at its own phase (`server::snapshot_phase`): no index is
/// snapshotted by every node, and each node still snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_snapshot_out_of_step() {
    let mut cluster = LocalCluster::start_traced(
        Path::new(EXE),
        3,
        &["--snapshot-interval-bytes", "3000"],
        true,
    )
    .unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    // One at a time: a block (an entry of about 150 bytes) per transaction,
    // so that the nodes' phases fall on different entries.
    for n in 0..120 {
        let body = json!({"id": format!("p{n}"), "payload": "y".repeat(100)});
        submit_ordered(&http, &cluster.url(n % 3), &body).await;
    }
    converge(&http, &cluster).await;
    let mut taken: Vec<BTreeSet<u64>> = Vec::new();
    for i in 0..3 {
        assert!(cluster.terminate(i).unwrap().success(), "node {}", i + 1);
        let indexes: BTreeSet<u64> = read_trace(&cluster.trace_path(i))
            .iter()
            .filter(|e| e["ev"] == "snapshot" && e["action"] == "taken")
            .map(|e| e["index"].as_u64().unwrap())
            .collect();
        assert!(
            indexes.len() >= 3,
            "node {}: snapshots at {indexes:?}",
            i + 1
        );
        taken.push(indexes);
    }
    let in_step: Vec<&u64> = taken[0]
        .iter()
        .filter(|i| taken[1].contains(i) && taken[2].contains(i))
        .collect();
    assert!(
        in_step.is_empty(),
        "every node snapshotted at {in_step:?} (nodes: {taken:?})"
    );
}

/// Nothing from the network can panic a node: garbage on the peer port is
/// logged and dropped, malformed and oversized submits get errors naming
/// the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_bad_requests_are_refused_without_harm() {
    use tokio::io::AsyncWriteExt;
    let cluster = LocalCluster::start(
        Path::new(EXE),
        3,
        &[
            "--absolute-max-bytes",
            "1000",
            "--preferred-max-bytes",
            "500",
        ],
    )
    .unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    for garbage in [
        b"\xff\xff\xff\xff junk".to_vec(),
        vec![0u8; 3],
        b"\x05\x00\x00\x00\x01\x09\x00\x00\x00\x00\x00\x00\x00".to_vec(),
        (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ] {
        let mut s = tokio::net::TcpStream::connect(cluster.peer_addr(0))
            .await
            .unwrap();
        let _ = s.write_all(&garbage).await;
        let _ = s.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cases = [
        (json!({"payload": "no id"}), 400, "missing field `id`"),
        (
            json!({"id": "x", "ops": [{"op": "cas", "key": "k"}]}),
            400,
            "missing field",
        ),
        (json!({"id": "x".repeat(300)}), 400, "field `id`"),
        (
            json!({"id": "big", "payload": "y".repeat(2000)}),
            413,
            "exceeds absolute max bytes",
        ),
    ];
    for (body, code, needle) in cases {
        let r = http
            .post(format!("{}/submit", cluster.url(0)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let r = http
        .post(format!("{}/submit", cluster.url(0)))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{}/blocks?from=-1", cluster.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{}/blocks?headers=maybe", cluster.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let ok = http
        .post(format!("{}/submit", cluster.url(1)))
        .json(&json!({"id": "after-garbage"}))
        .send()
        .await
        .unwrap();
    assert!(
        ok.status().is_success(),
        "the cluster still orders transactions"
    );
    assert!(
        cluster.log(0).contains("peer connection dropped"),
        "garbage is logged"
    );
}

fn read_trace(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.ends_with('\n'),
        "{}: a partial last line",
        path.display()
    );
    text.lines()
        .enumerate()
        .map(|(n, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {l}", path.display(), n + 1))
        })
        .collect()
}

async fn submit_many(http: &reqwest::Client, c: &LocalCluster, prefix: &str, n: usize) {
    let all: Vec<usize> = (0..c.len()).collect();
    submit_many_to(http, c, &all, prefix, n).await
}

/// Submits `n` transactions round-robin to `nodes`, retrying each.
async fn submit_many_to(
    http: &reqwest::Client,
    c: &LocalCluster,
    nodes: &[usize],
    prefix: &str,
    n: usize,
) {
    let bodies = (0..n).map(|k| json!({"id": format!("{prefix}{k}"), "payload": "t"}));
    submit_bodies_to(http, c, nodes, bodies).await
}

/// Submits each of `bodies` in turn, round-robin to `nodes`, retrying
/// each (a node restarting, a leader changing) until it is ordered.
async fn submit_bodies_to(
    http: &reqwest::Client,
    c: &LocalCluster,
    nodes: &[usize],
    bodies: impl Iterator<Item = Value>,
) {
    for (k, body) in bodies.enumerate() {
        let url = c.url(nodes[k % nodes.len()]);
        assert!(
            submit_until_ordered(http, &url, &body).await,
            "{} never ordered",
            body["id"]
        );
    }
}

/// Submits `body` to `url` until it is ordered (50 attempts, 100 ms
/// apart); whether it was.
async fn submit_until_ordered(http: &reqwest::Client, url: &str, body: &Value) -> bool {
    for _attempt in 0..50 {
        let r = http.post(format!("{url}/submit")).json(body).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Submits `per_worker` transactions of 100 bytes from each of `workers`
/// concurrent clients, client `w` to node `w % len`, each retried until
/// ordered.
async fn submit_concurrently(
    http: &reqwest::Client,
    c: &LocalCluster,
    prefix: &str,
    workers: usize,
    per_worker: usize,
) {
    let clients: Vec<_> = (0..workers)
        .map(|w| {
            let (http, url) = (http.clone(), c.url(w % c.len()));
            let prefix = format!("{prefix}{w}-");
            tokio::spawn(async move {
                for k in 0..per_worker {
                    let body = json!({"id": format!("{prefix}{k}"), "payload": "z".repeat(100)});
                    assert!(
                        submit_until_ordered(&http, &url, &body).await,
                        "{prefix}{k} never ordered"
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

/// The Raft trace (docs/trace.md): every node's file parses, `seq` runs on
/// across a SIGKILL and restart, and every `recv` orders after its `send`
/// in Lamport time (the causal merge the `raft` checker relies on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_parse_continue_across_restarts_and_order_recv_after_send() {
    let mut cluster = LocalCluster::start_traced(Path::new(EXE), 3, &[], true).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    submit_many(&http, &cluster, "a", 30).await;
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart(leader).unwrap();
    submit_many(&http, &cluster, "b", 30).await;
    converge(&http, &cluster).await;
    for i in 0..3 {
        let exit = cluster.terminate(i).unwrap();
        assert!(exit.success(), "node {} exit {exit:?}", i + 1);
    }
    let traces: Vec<Vec<Value>> = (0..3).map(|i| read_trace(&cluster.trace_path(i))).collect();
    let mut sends: HashMap<(u64, u64), &Value> = HashMap::new();
    for (i, events) in traces.iter().enumerate() {
        let kinds: BTreeSet<&str> = events.iter().map(|e| e["ev"].as_str().unwrap()).collect();
        for kind in ["start", "persist", "role", "send", "recv", "apply"] {
            assert!(kinds.contains(kind), "node {}: no {kind} event", i + 1);
        }
        let starts = events.iter().filter(|e| e["ev"] == "start").count();
        assert_eq!(starts, if i == leader { 2 } else { 1 }, "node {}", i + 1);
        durable_across_restarts(i, events);
        let mut lamport = 0;
        for (seq, e) in events.iter().enumerate() {
            assert_eq!(e["node"], i as u64 + 1);
            assert_eq!(e["seq"], seq as u64, "node {}: seq runs on", i + 1);
            let l = e["lamport"].as_u64().unwrap();
            assert!(l > lamport, "node {}: lamport grows at seq {seq}", i + 1);
            lamport = l;
            if e["ev"] == "send" {
                sends.insert((i as u64 + 1, l), e);
            }
        }
    }
    let mut matched = 0;
    for e in traces.iter().flatten().filter(|e| e["ev"] == "recv") {
        let key = (
            e["from"].as_u64().unwrap(),
            e["send_lamport"].as_u64().unwrap(),
        );
        let send = sends.get(&key).unwrap_or_else(|| panic!("no send for {e}"));
        for field in [
            "msg_type", "to", "term", "index", "log_term", "commit", "reject",
        ] {
            assert_eq!(send[field], e[field], "{field}: {send} vs {e}");
        }
        assert!(
            e["lamport"].as_u64() > send["lamport"].as_u64(),
            "{send} -> {e}"
        );
        matched += 1;
    }
    assert!(matched > 100, "only {matched} messages received");
    // The same block at each applied index on every node.
    let mut applied: HashMap<u64, (Value, Value)> = HashMap::new();
    for e in traces
        .iter()
        .flatten()
        .filter(|e| e["ev"] == "apply" && !e["block"].is_null())
    {
        let got = (e["block"].clone(), e["hash"].clone());
        let first = applied
            .entry(e["index"].as_u64().unwrap())
            .or_insert(got.clone());
        assert_eq!(*first, got, "index {}", e["index"]);
    }
    assert!(applied.len() >= 2);
}

/// Every `persist` reports only what a restart recovers: a `start` that cut
/// nothing holds at least the last persisted log and commit index.
fn durable_across_restarts(i: usize, events: &[Value]) {
    let mut last_persist: Option<&Value> = None;
    for e in events {
        match e["ev"].as_str() {
            Some("persist") => last_persist = Some(e),
            Some("start") => {
                if let (Some(p), false) = (last_persist, e["trace_cut"] == true) {
                    for field in ["commit", "last_index", "term"] {
                        assert!(
                            e[field].as_u64() >= p[field].as_u64(),
                            "node {}: {field} persisted {p} recovered {e}",
                            i + 1
                        );
                    }
                }
                last_persist = None;
            }
            _ => {}
        }
    }
}

/// Defect 2 (issue 13): when the raft thread dies (here: its trace cannot
/// be written, a disk full), the node exits non-zero instead of serving a
/// frozen `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_raft_thread_stops_the_node_with_an_error() {
    let mut cluster = LocalCluster::start(Path::new(EXE), 1, &["--trace", "/dev/full"]).unwrap();
    let exit = cluster.wait_exit(0, Duration::from_secs(10));
    let log = cluster.log(0);
    let exit = exit.unwrap_or_else(|| panic!("the node still runs without its raft thread\n{log}"));
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains("/dev/full"),
        "the error names the trace file\n{log}"
    );
}

/// A block store damaged under a snapshot's manifest: the log before the
/// snapshot is gone, so the node refuses to start, naming the file and the
/// offset, rather than serve a ledger with a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_store_refuses_to_start_naming_file_and_offset() {
    let mut cluster =
        LocalCluster::start(Path::new(EXE), 1, &["--snapshot-interval-bytes", "1000"]).unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    submit_many(&http, &cluster, "d", 60).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&http, &cluster.url(0)).await.unwrap()["snapshots_taken"] == 0 {
        assert!(Instant::now() < deadline, "no snapshot taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.terminate(0).unwrap().success());
    let store = std::fs::read_dir(cluster.data_dir(0))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("blocks.")
        })
        .expect("a block store");
    let mut bytes = std::fs::read(&store).unwrap();
    bytes[20] ^= 0xff; // inside block 0
    std::fs::write(&store, &bytes).unwrap();
    cluster.restart(0).unwrap();
    let exit = cluster.wait_exit(0, Duration::from_secs(10));
    let log = cluster.log(0);
    let exit = exit.unwrap_or_else(|| panic!("the node started on a damaged store\n{log}"));
    assert!(!exit.success(), "{exit:?}\n{log}");
    let name = store.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        log.contains(&name) && log.contains("offset 0") && log.contains("checksum mismatch"),
        "the error names the file and offset\n{log}"
    );
}

/// Writes one peer frame: `len u32 LE | kind | body`.
async fn write_peer_frame(s: &mut tokio::net::TcpStream, kind: u8, body: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut frame = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    frame.push(kind);
    frame.extend_from_slice(body);
    s.write_all(&frame).await.unwrap();
}

/// Defect 7 (issue 13): a snapshot from the leader that cannot be decoded
/// is refused before raft adopts it, so raft and storage never disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_snapshot_is_refused_before_raft_adopts_it() {
    use protobuf::Message as _;
    use raft::prelude::{Message, MessageType, Snapshot};
    let cluster = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    submit_many(&http, &cluster, "before", 5).await;
    let follower = (leader + 1) % 3;
    let s = status(&http, &cluster.url(follower)).await.unwrap();
    let (term, commit) = (
        s["term"].as_u64().unwrap(),
        s["commit_index"].as_u64().unwrap(),
    );
    let bogus_index = commit + 1000;
    let mut snapshot = Snapshot {
        data: b"not a state machine".to_vec().into(),
        ..Default::default()
    };
    snapshot.mut_metadata().index = bogus_index;
    snapshot.mut_metadata().term = term;
    snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.from = leader as u64 + 1;
    msg.to = follower as u64 + 1;
    msg.term = term;
    msg.set_snapshot(snapshot);
    let mut body = 1u64.to_le_bytes().to_vec();
    body.extend_from_slice(&msg.write_to_bytes().unwrap());
    let mut peer = tokio::net::TcpStream::connect(cluster.peer_addr(follower))
        .await
        .unwrap();
    write_peer_frame(&mut peer, 1, &(leader as u64 + 1).to_le_bytes()).await;
    write_peer_frame(&mut peer, 5, &body).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = status(&http, &cluster.url(follower))
        .await
        .unwrap_or_else(|| panic!("the follower died\n{}", cluster.log(follower)));
    assert!(
        s["commit_index"].as_u64().unwrap() < bogus_index,
        "raft adopted the undecodable snapshot: {s}"
    );
    submit_many(&http, &cluster, "after", 10).await;
    converge(&http, &cluster).await;
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    assert_eq!(
        chain(&http, &urls[follower]).await,
        chain(&http, &urls[leader]).await
    );
    assert!(
        cluster.log(follower).contains("undecodable snapshot"),
        "{}",
        cluster.log(follower)
    );
}

/// Issue 20 (smaller items): a transaction larger than the leader's
/// `--absolute-max-bytes` is refused with 413 also when a follower that
/// allows more forwards it (the follower relays the leader's answer);
/// nothing of it is ordered, and the cluster goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_transaction_over_the_leaders_limit_is_refused_413() {
    let small = [
        "--absolute-max-bytes",
        "1000",
        "--preferred-max-bytes",
        "500",
    ];
    let mut cluster = LocalCluster::start(Path::new(EXE), 3, &small).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    let large = [
        "--absolute-max-bytes",
        "100000",
        "--preferred-max-bytes",
        "500",
    ];
    cluster.set_flags(follower, &large);
    cluster.restart(follower).unwrap();
    assert_eq!(cluster.wait_leader(&http).await.unwrap(), leader);
    let body = json!({"id": "big", "payload": "y".repeat(5000)});
    let r = http
        .post(format!("{}/submit", cluster.url(follower)))
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["retryable"], false, "{v}");
    let why = v["error"].as_str().unwrap();
    assert!(why.contains("exceeds absolute max bytes 1000"), "{v}");
    submit_ordered(&http, &cluster.url(follower), &json!({"id": "small"})).await;
    let ids: Vec<String> = chain(&http, &cluster.url(leader))
        .await
        .into_iter()
        .flat_map(|b| b.txs.into_iter().map(|t| t.id))
        .collect();
    assert_eq!(ids, ["small"]);
}

/// Defect 6 (issue 13): what waits for an in-flight slot on the leader is
/// bounded by bytes (Fabric stops reading at MaxInflightBlocks); the rest
/// is refused at once with a retryable error instead of queueing up to a
/// thousand blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_refuses_submits_beyond_its_byte_backlog_retryably() {
    let flags = [
        "--max-inflight-blocks",
        "1",
        "--preferred-max-bytes",
        "100000",
        "--absolute-max-bytes",
        "200000",
    ];
    let cluster = LocalCluster::start(Path::new(EXE), 3, &flags).unwrap();
    let http = http();
    let leader = cluster.wait_leader(&http).await.unwrap();
    let url = cluster.url(leader);
    let payload = "p".repeat(90_000);
    let answers: Vec<_> = (0..64)
        .map(|n| {
            let (http, url, payload) = (http.clone(), url.clone(), payload.clone());
            tokio::spawn(async move {
                let body = json!({"id": format!("big{n}"), "payload": payload});
                let r = http
                    .post(format!("{url}/submit"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let code = r.status().as_u16();
                (code, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut refused = 0;
    let mut ok = 0;
    for a in answers {
        let (code, v) = a.await.unwrap();
        match code {
            200 => ok += 1,
            503 => {
                assert_eq!(v["retryable"], true, "{v}");
                assert!(v["error"].as_str().unwrap().contains("backlog"), "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1, "some are ordered");
    assert!(
        refused >= 1,
        "none refused: the backlog is unbounded by bytes"
    );
}

/// Stops a follower, orders 60 transactions of 100 bytes with snapshots
/// every 2000 bytes, restarts it and waits until all agree. Returns the
/// cluster, the leader's and the lagging node's index and the lagging
/// node's status.
async fn lag_and_rejoin(
    http: &reqwest::Client,
    catchup: &str,
) -> (LocalCluster, usize, usize, Value) {
    let flags = [
        "--snapshot-interval-bytes",
        "2000",
        "--snapshot-catchup-entries",
        catchup,
    ];
    let mut cluster = LocalCluster::start(Path::new(EXE), 3, &flags).unwrap();
    let leader = cluster.wait_leader(http).await.unwrap();
    let lagging = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    cluster.kill(lagging);
    for n in 0..60 {
        let body = json!({"id": format!("l{n}"), "payload": "z".repeat(100)});
        let url = cluster.url(if n % 2 == 0 { leader } else { other });
        submit_ordered(http, &url, &body).await;
    }
    let s = status(http, &cluster.url(leader)).await.unwrap();
    assert!(s["snapshots_taken"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["compactions"].as_u64().unwrap() >= 1, "{s}");
    cluster.restart(lagging).unwrap();
    converge(http, &cluster).await;
    let s = status(http, &cluster.url(lagging)).await.unwrap();
    (cluster, leader, lagging, s)
}

/// Issue 13: with a catch-up margin larger than what a follower missed,
/// the leader sends it entries, not a snapshot (Fabric's
/// SnapshotCatchUpEntries), although it snapshotted and compacted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_within_the_catch_up_margin_gets_entries_not_a_snapshot() {
    let http = http();
    let (cluster, _, lagging, s) = lag_and_rejoin(&http, "1000").await;
    assert_eq!(s["snapshots_installed"], 0, "{s}\n{}", cluster.log(lagging));
}

/// Issue 13: a follower that was down while the leader snapshotted and
/// compacted past it catches up by an installed snapshot; every node
/// reports the snapshots it took and the compactions in `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compaction_catches_up_by_snapshot() {
    let http = http();
    let (mut cluster, leader, lagging, s) = lag_and_rejoin(&http, "2").await;
    assert!(
        s["snapshots_installed"].as_u64().unwrap() >= 1,
        "{s}\n{}",
        cluster.log(lagging)
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    assert_eq!(
        chain(&http, &urls[lagging]).await,
        chain(&http, &urls[leader]).await
    );
    let metrics = metrics_text(&http, &urls[lagging]).await;
    assert!(
        !metrics.contains("consensus_etcdraft_snapshots_installed 0\n"),
        "{metrics}"
    );
    // Its own snapshots after the installed one start a new block store
    // generation, from which it recovers after a SIGKILL.
    let taken = s["snapshots_taken"].as_u64().unwrap();
    submit_many_to(&http, &cluster, &[leader], "after", 200).await;
    converge(&http, &cluster).await;
    let s = status(&http, &urls[lagging]).await.unwrap();
    assert!(s["snapshots_taken"].as_u64().unwrap() > taken, "{s}");
    cluster.kill(lagging);
    cluster.restart(lagging).unwrap();
    converge(&http, &cluster).await;
    assert_eq!(
        chain(&http, &urls[lagging]).await,
        chain(&http, &urls[leader]).await
    );
}

/// Issue 20, item 2: with `--snapshot-catchup-entries` `catchup`, under
/// concurrent load, every node snapshots and compacts its log, and then
/// the leader still proposes and the followers still append: the cluster
/// keeps ordering, every node stays up and every chain is the same.
async fn compaction_under_load(catchup: &str) {
    let flags = [
        "--snapshot-interval-bytes",
        "3000",
        "--snapshot-catchup-entries",
        catchup,
    ];
    let cluster = LocalCluster::start(Path::new(EXE), 3, &flags).unwrap();
    let http = http();
    cluster.wait_leader(&http).await.unwrap();
    submit_concurrently(&http, &cluster, "a", 8, 15).await;
    let mut compactions = Vec::new();
    for i in 0..3 {
        let s = status(&http, &cluster.url(i)).await;
        let s = s.unwrap_or_else(|| panic!("node {} down\n{}", i + 1, cluster.log(i)));
        let n = s["compactions"].as_u64().unwrap();
        assert!(n >= 1, "node {}: {s}", i + 1);
        compactions.push(n);
    }
    submit_concurrently(&http, &cluster, "b", 8, 15).await;
    converge(&http, &cluster).await;
    let first = chain(&http, &cluster.url(0)).await;
    for (i, before) in compactions.into_iter().enumerate() {
        let s = status(&http, &cluster.url(i)).await.unwrap();
        assert!(s["compactions"].as_u64().unwrap() > before, "{s}");
        assert_eq!(chain(&http, &cluster.url(i)).await, first, "node {}", i + 1);
        assert!(!cluster.log(i).contains("panicked"), "{}", cluster.log(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_without_a_catch_up_margin_keeps_the_cluster_ordering() {
    compaction_under_load("0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_with_a_catch_up_margin_of_one_keeps_the_cluster_ordering() {
    compaction_under_load("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_with_the_default_catch_up_margin_keeps_the_cluster_ordering() {
    compaction_under_load("4").await;
}

mod crash_points;
mod dirs;
mod group_commit;
mod members;
mod oracles;
mod wal;
