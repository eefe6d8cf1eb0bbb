//! One test from start to verdict: start the cluster, drive the workload
//! while the nemesis injects faults, heal, final reads, collect, judge,
//! report. Everything it starts is torn down on every path out.

use crate::clock::FAKETIME_LIB;
use crate::history::{Kind, Process, Record, Recorder, F};
use crate::judge;
use crate::membership::{Entry, Membership};
use crate::nemesis::Nemesis;
use crate::plan::{Plan, RuntimeKind, Workload};
use crate::probe::Probe;
use crate::runtime::process::{ProcessOptions, ProcessRuntime};
use crate::runtime::{AnyRuntime, ClusterSpec, Runtime};
use crate::store::RunDir;
use crate::sut::System;
use crate::workers::{Counters, Placement, Workers};
use anyhow::{bail, Context};
use checker::verdict::Results;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};
use workloads::{
    Generator, Op, OrdealClient, OrderingGenerator, Outcome, RegisterGenerator, SutClient,
};

/// How long a fresh cluster may take to elect its first leader.
const FIRST_LEADER_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often the history buffer reaches the disk.
const HISTORY_FLUSH_PERIOD: Duration = Duration::from_millis(100);

/// The runtime of the test in progress, for cleanup on Ctrl-C.
pub type RuntimeSlot = Arc<std::sync::Mutex<Option<Arc<Mutex<AnyRuntime>>>>>;

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run's store directory.
    pub dir: PathBuf,
    /// The verdicts.
    pub results: Results,
    /// Ops completed (ok, fail, info).
    pub counts: (u64, u64, u64),
    /// Events recorded.
    pub events: u64,
    /// Seconds the workload ran.
    pub workload_s: f64,
    /// Time spent inside the recorder.
    pub recorder_busy: Duration,
    /// CPU seconds the harness process used while the workload ran.
    pub workload_cpu_s: f64,
}

fn build_runtime(plan: &Plan, binary: &Path, label: &str) -> anyhow::Result<AnyRuntime> {
    let spec = ClusterSpec {
        sut: plan.sut,
        nodes: plan.nodes.len(),
        binary: binary.to_path_buf(),
        node_args: plan.sut.node_flags(plan),
        // Absolute: Docker bind-mounts the clock directory from it.
        work_dir: std::path::absolute(&plan.store)
            .unwrap_or_else(|_| plan.store.clone())
            .join(".work")
            .join(label),
        run_label: label.to_string(),
        disk: crate::disk::spec_for(plan)?.map(Box::new),
    };
    match plan.runtime {
        RuntimeKind::Process => {
            let lib = PathBuf::from(FAKETIME_LIB);
            let options = ProcessOptions {
                faketime_lib: lib.is_file().then_some(lib),
            };
            Ok(AnyRuntime::Process(Box::new(ProcessRuntime::new(
                spec, options,
            ))))
        }
        RuntimeKind::Docker => crate::runtime::docker::build(spec),
        RuntimeKind::Ssh => {
            let options = crate::runtime::ssh::SshOptions {
                hosts: plan.hosts.clone(),
                trust: plan.ssh_trust.clone(),
                faults: plan.nemesis.clone(),
            };
            let runtime = crate::runtime::ssh::SshRuntime::new(spec, options)?;
            Ok(AnyRuntime::Ssh(Box::new(runtime)))
        }
    }
}

/// Runs one test.
pub async fn run_test(
    plan: &Plan,
    binary: &Path,
    slot: &RuntimeSlot,
) -> anyhow::Result<RunOutcome> {
    let run_dir = RunDir::create(plan)?;
    eprintln!(
        "ordeal: test {} seed {} runtime {:?} → {}",
        plan.name,
        plan.seed,
        plan.runtime,
        run_dir.path.display()
    );
    let label = format!("ordeal-{}-{}", std::process::id(), plan.seed);
    if plan.nemesis.contains(&crate::plan::Fault::Clock)
        && plan.runtime == RuntimeKind::Process
        && !Path::new(FAKETIME_LIB).is_file()
    {
        bail!("--nemesis clock needs libfaketime ({FAKETIME_LIB}): apt-get install libfaketime");
    }
    let runtime = Arc::new(Mutex::new(build_runtime(plan, binary, &label)?));
    *slot.lock().expect("slot lock") = Some(runtime.clone());
    let result = drive(plan, &run_dir, runtime.clone()).await;
    let teardown = runtime.lock().await.teardown().await;
    *slot.lock().expect("slot lock") = None;
    let driven = result?;
    teardown.context("tearing down the cluster")?;
    let results = judge::judge(&run_dir.path, plan.workload)?;
    report(&run_dir.path);
    run_dir.mark_latest()?;
    Ok(RunOutcome {
        dir: run_dir.path,
        results,
        counts: driven.workload.counts,
        events: driven.events,
        workload_s: driven.workload.seconds,
        recorder_busy: driven.recorder_busy,
        workload_cpu_s: driven.workload.cpu_s,
    })
}

/// Renders the run's report (plots and index.html), warning (not failing)
/// when it cannot.
pub fn report(dir: &Path) {
    match reports::render(dir) {
        Ok(_) => eprintln!("report: {}", dir.join("index.html").display()),
        Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "could not render the report"),
    }
}

/// CPU seconds this process has used (user + system), from /proc.
pub fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or(&stat);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What [`drive`] measured of a run.
struct Driven {
    /// Events recorded.
    events: u64,
    /// What the workload phase measured.
    workload: WorkloadRan,
    /// Time spent inside the recorder.
    recorder_busy: Duration,
}

/// The phases of a test on a built cluster, in order: start, assemble,
/// workload with faults, heal and recover, final reads, collect. Judging
/// and reporting follow in [`run_test`], after the cluster is torn down.
async fn drive(
    plan: &Plan,
    run_dir: &RunDir,
    runtime: Arc<Mutex<AnyRuntime>>,
) -> anyhow::Result<Driven> {
    let cluster = start(plan, run_dir, &runtime).await?;
    let history = History::open(run_dir)?;
    let test = assemble(plan, &cluster, &history.recorder, runtime.clone())?;
    let placement = Placement::new(cluster.membership.clone());
    let client = test.client.clone();
    let sampler = crate::sampler::Sampler::start(
        &run_dir.path.join("status.jsonl"),
        cluster.probe.clone(),
        history.recorder.clone(),
    )?;
    let ran = run_workload(plan, test, placement, &history.recorder).await?;
    heal_and_recover(plan, &runtime, &cluster.probe, &cluster.membership).await?;
    sampler.stop().await?;
    if let (Workload::Ordering, SutClient::Ordeal(client)) = (plan.workload, &*client) {
        final_reads(client, &history.recorder, &cluster.membership.all()).await;
    }
    let started: Vec<String> = cluster
        .membership
        .all()
        .into_iter()
        .map(|e| e.name)
        .collect();
    collect(plan, &runtime, &cluster.probe, run_dir, &started).await?;
    history.close()?;
    Ok(Driven {
        events: history.recorder.len(),
        workload: ran,
        recorder_busy: history.recorder.busy(),
    })
}

/// A started cluster with a leader.
struct Cluster {
    /// Each node's name and client URL.
    nodes: Vec<(String, String)>,
    /// Status queries against the nodes.
    probe: Probe,
    /// Every node started in the run and its standing (the `member`
    /// nemesis adds and removes; workers, final reads and recovery read).
    membership: Membership,
}

/// Phase one: starts every node and waits for the first leader.
async fn start(
    plan: &Plan,
    run_dir: &RunDir,
    runtime: &Arc<Mutex<AnyRuntime>>,
) -> anyhow::Result<Cluster> {
    runtime
        .lock()
        .await
        .start()
        .await
        .context("starting the cluster")?;
    let nodes: Vec<(String, String)> = {
        let rt = runtime.lock().await;
        rt.nodes()
            .into_iter()
            .map(|n| (n.clone(), rt.client_url(&n)))
            .collect()
    };
    let probe = Probe::new(nodes.clone(), plan.sut)?;
    if !probe
        .wait_recovered(Instant::now() + FIRST_LEADER_WAIT_MAX)
        .await
    {
        let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let why = no_leader_evidence(runtime, run_dir, &names).await;
        bail!("the cluster did not elect a leader within {FIRST_LEADER_WAIT_MAX:?}:\n{why}");
    }
    let membership = Membership::founders(&nodes);
    Ok(Cluster {
        nodes,
        probe,
        membership,
    })
}

/// Lines of a node's log quoted when the cluster never elected a leader.
const LOG_TAIL_LINES: usize = 5;

/// Why a cluster may have never elected a leader, node by node: whether
/// its process runs and the end of its log (copied into the run
/// directory, which outlives the cluster).
async fn no_leader_evidence(
    runtime: &Arc<Mutex<AnyRuntime>>,
    run_dir: &RunDir,
    nodes: &[String],
) -> String {
    let mut out = String::new();
    for n in nodes {
        let mut rt = runtime.lock().await;
        let state = if rt.running(n).await {
            "running"
        } else {
            "NOT running"
        };
        let log = run_dir.node_dir(n).map(|d| d.join("node.log"));
        let tail = match &log {
            Ok(path) => match rt.collect_log(n, path).await {
                Ok(()) => std::fs::read_to_string(path)
                    .map(|text| {
                        let lines: Vec<&str> = text.lines().collect();
                        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n    ")
                    })
                    .unwrap_or_else(|e| format!("(unreadable: {e})")),
                Err(e) => format!("(no log: {e:#})"),
            },
            Err(e) => format!("(no node directory: {e:#})"),
        };
        let place = log.map(|p| p.display().to_string()).unwrap_or_default();
        out.push_str(&format!("  {n}: {state}; log {place} ends:\n    {tail}\n"));
    }
    out
}

/// The history file and the task that flushes it; the task stops when this
/// is dropped, on every path out.
struct History {
    recorder: Recorder,
    flusher: tokio::task::JoinHandle<()>,
}

impl History {
    fn open(run_dir: &RunDir) -> anyhow::Result<History> {
        let recorder = Recorder::create(&run_dir.history())?;
        let r = recorder.clone();
        let flusher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HISTORY_FLUSH_PERIOD).await;
                if let Err(e) = r.flush() {
                    tracing::error!(error = %e, "history flush failed");
                }
            }
        });
        Ok(History { recorder, flusher })
    }

    /// Stops the flusher and writes what is buffered.
    fn close(&self) -> anyhow::Result<()> {
        self.flusher.abort();
        self.recorder.flush()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

/// The test put together (Jepsen's test map made live): the client, the
/// generator and the nemesis, none of them started yet.
struct Assembly {
    client: Arc<SutClient>,
    generator: Box<dyn Generator>,
    nemesis: Nemesis,
    active: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Phase two: the system's client, the workload's generator and the
/// nemesis, each seeded from the plan. A new fault is a [`Fault`] variant
/// the nemesis injects and heals; nothing here changes.
///
/// [`Fault`]: crate::plan::Fault
fn assemble(
    plan: &Plan,
    cluster: &Cluster,
    recorder: &Recorder,
    runtime: Arc<Mutex<AnyRuntime>>,
) -> anyhow::Result<Assembly> {
    let client = Arc::new(plan.sut.client(plan, cluster.nodes.clone())?);
    let generator: Box<dyn Generator> = match plan.workload {
        Workload::Ordering => Box::new(OrderingGenerator::new(plan.seed)),
        Workload::Register => Box::new(RegisterGenerator::new(plan.seed)),
    };
    let active = Arc::new(std::sync::Mutex::new(Vec::new()));
    let nemesis = Nemesis {
        faults: plan.nemesis.clone(),
        membership: cluster.membership.clone(),
        founders: cluster.nodes.len(),
        client: client.clone(),
        runtime,
        probe: cluster.probe.clone(),
        recorder: recorder.clone(),
        interval: Duration::from_secs(plan.nemesis_interval_s),
        active: active.clone(),
        seed: plan.seed,
        election_timeout_ms: plan.election_timeout_ms,
        aim_uncommitted_tail: plan.aim_uncommitted_tail,
    };
    Ok(Assembly {
        client,
        generator,
        nemesis,
        active,
    })
}

/// What the workload phase measured.
struct WorkloadRan {
    /// Ops completed (ok, fail, info).
    counts: (u64, u64, u64),
    /// Seconds the workload ran.
    seconds: f64,
    /// CPU seconds the harness used meanwhile.
    cpu_s: f64,
}

/// Phase three: the workers run the workload until the time limit while
/// the nemesis injects faults; then the nemesis heals what it left.
async fn run_workload(
    plan: &Plan,
    test: Assembly,
    placement: Placement,
    recorder: &Recorder,
) -> anyhow::Result<WorkloadRan> {
    let cpu_at_start = cpu_s();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(plan.time_limit_s);
    let workers = Arc::new(Workers {
        generator: std::sync::Mutex::new(test.generator),
        client: test.client,
        recorder: recorder.clone(),
        placement,
        deadline,
        rate: plan.rate,
        started,
        slot: AtomicU64::new(0),
        concurrency: plan.concurrency as u64,
        counters: Counters::default(),
        seed: plan.seed,
    });
    let handles: Vec<_> = (0..plan.concurrency as u64)
        .map(|w| tokio::spawn(workers.clone().run(w)))
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let nemesis_task = tokio::spawn(test.nemesis.run(stop_rx));
    let progress = crate::progress::show(workers.clone(), test.active, deadline);
    for h in handles {
        h.await.context("a worker panicked")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s = cpu_s() - cpu_at_start;
    let _ = stop_tx.send(true);
    let nemesis_result = nemesis_task.await.context("the nemesis panicked")?;
    progress.finish_and_clear();
    nemesis_result.context("the nemesis failed")?;
    Ok(WorkloadRan {
        counts: workers.counters.get(),
        seconds,
        cpu_s,
    })
}

/// Phase four: undoes every fault, whatever the nemesis left, on every
/// node the runtime runs (those the `member` nemesis started included),
/// and gives the members `recovery_s` to elect a leader and catch up;
/// returns whether they did. Removed nodes are not waited for: they
/// halted and never catch up.
async fn heal_and_recover(
    plan: &Plan,
    runtime: &Arc<Mutex<AnyRuntime>>,
    probe: &Probe,
    membership: &Membership,
) -> anyhow::Result<bool> {
    {
        let mut rt = runtime.lock().await;
        rt.heal().await?;
        for n in &rt.nodes() {
            rt.resume(n).await?;
            rt.restart(n).await?;
            if plan.nemesis.contains(&crate::plan::Fault::Clock) {
                rt.reset_clock(n).await?;
            }
        }
        if plan.nemesis.iter().any(|f| crate::disk::is_disk(*f)) {
            let started = rt.nodes();
            crate::disk::heal_all(&mut rt, &started).await?;
        }
    }
    let members = membership.members();
    let recovered = probe
        .wait_recovered_of(
            Instant::now() + Duration::from_secs(plan.recovery_s),
            &members,
        )
        .await;
    if !recovered {
        tracing::warn!(
            recovery_s = plan.recovery_s,
            "cluster did not fully recover before the final reads"
        );
    }
    Ok(recovered)
}

/// The argument of the final read of `entry`: a whole chain, and whether
/// the node is a member at the end (`"member": false` for a removed node,
/// or one whose addition never committed; its chain must be a prefix of
/// the members', `docs/ordering-history.md`).
pub fn final_read_arg(entry: &Entry) -> Value {
    let standing = serde_json::to_value(entry.standing).unwrap_or(Value::Null);
    json!({"from": 0, "final": true, "member": entry.standing.is_member(), "standing": standing})
}

/// Phase five (ordering workload): reads the whole chain of every node
/// started in the run, removed ones included, recorded as final `deliver`
/// ops. These reads are not bound by `p mod n`: process `1_000_000 + i`
/// reads the `i`-th node started, one process per node, after the
/// workers' processes are done.
async fn final_reads(client: &OrdealClient, recorder: &Recorder, nodes: &[Entry]) {
    for (i, entry) in nodes.iter().enumerate() {
        let node = &entry.name;
        let process = Process::Client(1_000_000 + i as u64);
        let arg = final_read_arg(entry);
        let index = client.add_node(node, &entry.url);
        recorder.record(&Record {
            process,
            kind: Kind::Invoke,
            f: F::Op(Op::Deliver),
            key: None,
            value: &arg,
            node: Some(node),
            error: None,
        });
        match client.deliver_chain(index).await {
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

/// Phase six: each node's artifacts into its store directory. A new
/// per-node artifact is one more step in this loop.
async fn collect(
    plan: &Plan,
    runtime: &Arc<Mutex<AnyRuntime>>,
    probe: &Probe,
    run_dir: &RunDir,
    nodes: &[String],
) -> anyhow::Result<()> {
    for n in nodes {
        let dir = run_dir.node_dir(n)?;
        crate::store::write_json(&dir.join("metrics.json"), &probe.metrics(n).await)?;
        if let Err(e) = runtime
            .lock()
            .await
            .collect_log(n, &dir.join("node.log"))
            .await
        {
            tracing::warn!(node = %n, error = %e, "could not collect the node log");
        }
        if plan.sut.traces() {
            if let Err(e) = crate::raft_check::collect_trace(runtime, n, &dir).await {
                tracing::warn!(node = %n, error = %e, "could not collect the node's Raft trace");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Standing;
    use node::bench::LocalCluster;
    use std::collections::{BTreeMap, BTreeSet};
    use workloads::Ack;

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
        final_reads(ordeal, &recorder, &membership.all()).await;
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
