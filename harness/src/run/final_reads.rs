//! Phase five of a run (ordering workload): every node's whole chain read
//! and recorded as final `deliver` ops.

use crate::cluster::membership::Entry;
use crate::cluster::probe::Probe;
use crate::history::{Kind, Process, Record, Recorder, F};
use serde_json::{json, Value};
use workloads::{Op, Outcome, SutClient};

/// The argument of the final read of `entry`: a whole chain, and whether
/// the node is a member at the end (`"member": false` for a removed node,
/// or one whose addition never committed; its chain must be a prefix of
/// the members', `docs/ordering-history.md`).
pub fn final_read_arg(entry: &Entry) -> Value {
    let standing = serde_json::to_value(entry.standing).unwrap_or(Value::Null);
    json!({"from": 0, "final": true, "member": entry.standing.is_member(), "standing": standing})
}

/// Phase five (ordering workload): reads the whole chain of every node
/// started in the run (a NATS server's own copy of the stream), removed
/// ones included, recorded as final `deliver`
/// ops. These reads are not bound by `p mod n`: process `1_000_000 + i`
/// reads the `i`-th node started, one process per node, after the
/// workers' processes are done. A node whose read fails but whose status
/// proves it holds nothing (`System::absent_copy`) is recorded holding an
/// empty chain.
pub async fn final_reads(client: &SutClient, probe: &Probe, recorder: &Recorder, nodes: &[Entry]) {
    for (i, entry) in nodes.iter().enumerate() {
        let node = &entry.name;
        let process = Process::Client(1_000_000 + i as u64);
        let arg = final_read_arg(entry);
        let index = client
            .add_node(node, &entry.url)
            .or_else(|| client.index_of(node))
            .unwrap_or(i);
        recorder.record(&Record {
            process,
            kind: Kind::Invoke,
            f: F::Op(Op::Deliver),
            key: None,
            value: &arg,
            node: Some(node),
            error: None,
        });
        let outcome = match client.deliver_chain(index).await {
            Outcome::Fail(e) => match probe.absent_copy(node, &e).await {
                Some(empty) => Outcome::Ok(empty),
                None => Outcome::Fail(e),
            },
            outcome => outcome,
        };
        match outcome {
            Outcome::Ok(mut v) => {
                v["final"] = Value::Bool(true);
                v["member"] = arg["member"].clone();
                recorder.record(&Record {
                    process,
                    kind: Kind::Ok,
                    f: F::Op(Op::Deliver),
                    key: None,
                    value: &v,
                    node: Some(node),
                    error: None,
                });
            }
            Outcome::Fail(e) | Outcome::Unavailable(e) | Outcome::Removed(e) | Outcome::Info(e) => {
                recorder.record(&Record {
                    process,
                    kind: Kind::Fail,
                    f: F::Op(Op::Deliver),
                    key: None,
                    value: &arg,
                    node: Some(node),
                    error: Some(&e),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::{Membership, Standing};
    use crate::cluster::probe::Probe;
    use crate::run::workers::{Counters, Placement, Workers};
    use node::bench::LocalCluster;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use workloads::{Ack, OrdealClient, OrderingGenerator, SutClient};

    /// The debug `ordeal-node` of this workspace, built if missing.
    fn node_binary() -> PathBuf {
        let exe = std::env::current_exe().expect("the test's path");
        let path = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .join("ordeal-node");
        if !path.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-q", "-p", "node", "--bin", "ordeal-node"])
                .status()
                .expect("running cargo");
            assert!(status.success(), "building ordeal-node");
        }
        path
    }

    /// POSTs a membership change to `url` until it is applied (retrying
    /// while refused with 409: promotion before the log, a change in flight).
    async fn change(http: &reqwest::Client, url: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = http
                .post(format!("{url}/members"))
                .json(&body)
                .send()
                .await
                .expect("POST /members");
            let status = r.status().as_u16();
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            if status == 200 {
                return answer;
            }
            assert_eq!(status, 409, "{body}: {answer}");
            assert!(Instant::now() < deadline, "{body}: still refused: {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How long the workers run: time for the changes (each retried for up
    /// to 20 s on a loaded machine) and four seconds after them.
    const WORKLOAD: Duration = Duration::from_secs(14);

    fn read_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Issue 14 on real processes, driving `POST /members` by hand (the
    /// `member` nemesis does it in a run): while the workers run, a fourth
    /// node is added and promoted, and a founder follower is removed
    /// without the registry being told. The workers leave the removed node
    /// at its `410` (one more op each at most), load the new one, and keep
    /// one node per process; recovery waits for the members only; the
    /// final reads cover all four nodes, the removed one marked; the
    /// ordering checker finds the history valid.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_follow_a_changing_membership_and_final_reads_mark_the_removed_node() {
        let mut c = LocalCluster::start(&node_binary(), 3, &[]).unwrap();
        let http = reqwest::Client::new();
        let leader = c.wait_leader(&http).await.unwrap();
        let founders: Vec<(String, String)> =
            (0..3).map(|i| (format!("n{}", i + 1), c.url(i))).collect();
        let membership = Membership::founders(&founders);
        let ordeal =
            OrdealClient::new(founders, Ack::Committed, Duration::from_secs(3), "t").unwrap();
        let client = Arc::new(SutClient::Ordeal(ordeal));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let started = Instant::now();
        let concurrency = 6;
        let workers = Arc::new(Workers {
            generator: std::sync::Mutex::new(Box::new(OrderingGenerator::new(5))),
            client: client.clone(),
            recorder: recorder.clone(),
            placement: Placement::new(membership.clone()),
            deadline: started + WORKLOAD,
            rate: 60.0,
            started,
            slot: AtomicU64::new(0),
            concurrency,
            counters: Counters::default(),
            seed: 5,
        });
        let handles: Vec<_> = (0..concurrency)
            .map(|w| tokio::spawn(workers.clone().run(w)))
            .collect();
        let SutClient::Ordeal(ordeal) = &*client else {
            unreachable!()
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let new = c.add_node().unwrap();
        membership.started("n4", &c.url(new), 4);
        ordeal.add_node("n4", &c.url(new));
        let add = json!({"changes": [{"op": "add", "id": 4, "addr": c.peer_addr(new)}]});
        change(&http, &c.url(leader), add).await;
        membership.set("n4", Standing::Learner);
        let promote = json!({"changes": [{"op": "promote", "id": 4}]});
        change(&http, &c.url(leader), promote).await;
        membership.set("n4", Standing::Voter);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let gone = (0..3).find(|&i| i != leader).unwrap();
        let gone_name = format!("n{}", gone + 1);
        let remove = json!({"changes": [{"op": "remove", "id": gone + 1}]});
        change(&http, &c.url(leader), remove).await;
        let left = WORKLOAD.saturating_sub(started.elapsed());
        assert!(
            left >= Duration::from_secs(4),
            "the changes took until {:?} of the {WORKLOAD:?} workload: too late to see the workers move",
            started.elapsed()
        );
        for h in handles {
            h.await.unwrap();
        }
        membership.set(&gone_name, Standing::Removed);
        let all: Vec<(String, String)> = membership
            .all()
            .into_iter()
            .map(|e| (e.name, e.url))
            .collect();
        let probe = Probe::new(all, crate::sut::Sut::Ordeal).unwrap();
        let members = membership.members();
        let soon = Instant::now() + Duration::from_secs(20);
        assert!(probe.wait_recovered_of(soon, &members).await);
        final_reads(&client, &probe, &recorder, &membership.all()).await;
        recorder.flush().unwrap();
        judge_the_history(&path, &gone_name, concurrency);
    }

    fn judge_the_history(path: &Path, gone: &str, concurrency: u64) {
        let lines = read_lines(path);
        let mut nodes_of: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        let mut retired: BTreeSet<u64> = BTreeSet::new();
        let (mut removed_answers, mut after_first_410, mut ok_on_n4) = (0, 0, 0);
        for e in &lines {
            let (Some(p), Some(node)) = (e["process"].as_u64(), e["node"].as_str()) else {
                continue;
            };
            if p >= 1_000_000 {
                continue;
            }
            nodes_of.entry(p).or_default().insert(node.to_string());
            if e["type"] == "invoke" {
                assert!(!retired.contains(&p), "process {p} used after its 410: {e}");
                after_first_410 += u64::from(removed_answers > 0 && node == gone);
            }
            if e["error"]
                .as_str()
                .is_some_and(|s| s.starts_with("removed:"))
            {
                assert_eq!(e["type"], "fail", "{e}");
                assert_eq!(node, gone, "{e}");
                removed_answers += 1;
                retired.insert(p);
            }
            ok_on_n4 += u64::from(node == "n4" && e["type"] == "ok");
        }
        eprintln!(
            "{} events, {} processes, {removed_answers} answers 410 from {gone}, {after_first_410} ops sent there after the first, {ok_on_n4} ok on n4",
            lines.len(),
            nodes_of.len()
        );
        assert!(
            removed_answers > 0,
            "no worker was told its node was removed"
        );
        assert!(
            after_first_410 <= concurrency,
            "{after_first_410} ops sent to {gone} after its first 410"
        );
        assert!(ok_on_n4 > 0, "the added node got no load");
        for (p, nodes) in &nodes_of {
            assert_eq!(nodes.len(), 1, "process {p} talked to {nodes:?}");
        }
        let finals: Vec<(String, bool)> = lines
            .iter()
            .filter(|e| e["type"] == "invoke" && e["value"]["final"] == true)
            .map(|e| {
                (
                    e["node"].as_str().unwrap().to_string(),
                    e["value"]["member"].as_bool().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, bool)> = ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| (n.to_string(), *n != gone))
            .collect();
        assert_eq!(finals, want);
        let file = std::fs::File::open(path).unwrap();
        let r = checker::ordering::check_reader(std::io::BufReader::new(file)).unwrap();
        assert_eq!(
            r.valid,
            checker::verdict::Validity::Valid,
            "{:?}",
            r.anomalies
        );
        assert_eq!(r.counts["removed-final-reads"], 1);
    }
}
