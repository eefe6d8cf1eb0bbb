//! One test from start to verdict: start the cluster, drive the workload
//! while the nemesis injects faults, heal, final reads, collect, judge,
//! report. Everything it starts is torn down on every path out.
//!
//! Layers inside: this file (the phases in order), then one file per
//! phase (`cluster.rs`, `assemble.rs`, `workload.rs`, `recover.rs`,
//! `final_reads.rs`, `collect.rs`), then what the phases use (`workers.rs`:
//! the client workers; `progress.rs`: the bar; `sampler.rs`: the status
//! sampler; `crashes.rs`: the watch on nodes that end by themselves).

pub mod assemble;
pub mod cluster;
pub mod collect;
pub mod crashes;
pub mod final_reads;
pub mod progress;
pub mod recover;
pub mod sampler;
pub mod workers;
pub mod workload;

use crate::history::Recorder;
use crate::judge;
use crate::judge::catchup::RECOVERY_JSON;
use crate::judge::report::report;
use crate::judge::Workload;
use crate::nemesis::package::FaultPackage;
use crate::plan::Plan;
use crate::runtime::verbs::Runtime;
use crate::runtime::AnyRuntime;
use crate::store::{write_json, RunDir};
use anyhow::Context;
use assemble::assemble;
use checker::verdict::Results;
use cluster::{build_runtime, start};
use collect::collect;
use crashes::CrashWatch;
use final_reads::final_reads;
use recover::heal_and_recover;
use sampler::Sampler;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use workers::Placement;
use workload::{run_workload, WorkloadRan};

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

/// Runs one test.
pub async fn run_test(
    plan: &Plan,
    binary: &Path,
    slot: &RuntimeSlot,
) -> anyhow::Result<RunOutcome> {
    let run_dir = RunDir::create(&plan.store, &plan.name, plan)?;
    eprintln!(
        "ordeal: test {} seed {} runtime {:?} → {}",
        plan.name,
        plan.seed,
        plan.runtime,
        run_dir.path.display()
    );
    let label = format!("ordeal-{}-{}", std::process::id(), plan.seed);
    for fault in &plan.nemesis {
        fault.check_here(plan.runtime)?;
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
    let sampler = Sampler::start(
        &run_dir.path.join("status.jsonl"),
        cluster.probe.clone(),
        history.recorder.clone(),
    )?;
    let crash_watch = CrashWatch::start(runtime.clone(), &history.recorder);
    let ran = run_workload(plan, test, placement, &history.recorder).await?;
    let recovery = heal_and_recover(
        plan,
        &runtime,
        &cluster.probe,
        &cluster.membership,
        &crash_watch,
    )
    .await?;
    write_json(
        &run_dir.path.join(RECOVERY_JSON),
        &serde_json::to_value(&recovery)?,
    )?;
    sampler.stop().await?;
    if plan.workload == Workload::Ordering {
        final_reads(
            &client,
            &cluster.probe,
            &history.recorder,
            &cluster.membership.all(),
        )
        .await;
    }
    crash_watch.finish(plan, &runtime, &run_dir.path).await?;
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

/// The history file and the task that flushes it; the task stops when this
/// is dropped, on every path out.
struct History {
    recorder: Recorder,
    flusher: tokio::task::JoinHandle<()>,
}

impl History {
    fn open(run_dir: &RunDir) -> anyhow::Result<History> {
        let recorder = Recorder::create(&run_dir.history())?;
        run_dir.amend_test(
            "history_epoch_unix_ms",
            serde_json::json!(recorder.epoch_unix_ms()),
        )?;
        let r = recorder.clone();
        let flusher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HISTORY_FLUSH_PERIOD).await;
                if let Err(e) = r.flush() {
                    // Kept by the recorder: `close` fails the run with it.
                    tracing::error!(error = %e, "history flush failed");
                    return;
                }
            }
        });
        Ok(History { recorder, flusher })
    }

    /// Stops the flusher and writes what is buffered; fails, naming the
    /// file and the error, when any write of the history failed during
    /// the run (a history with a missing line is not judged: exit 3).
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
