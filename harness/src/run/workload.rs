//! Phase three of a run: the workers drive the workload until the time
//! limit while the nemesis injects faults.

use crate::history::Recorder;
use crate::plan::Plan;
use crate::run::assemble::Assembly;
use crate::run::workers::{Counters, Placement, Workers};
use anyhow::Context;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

/// What the workload phase measured.
pub struct WorkloadRan {
    /// Ops completed (ok, fail, info).
    pub counts: (u64, u64, u64),
    /// Seconds the workload ran.
    pub seconds: f64,
    /// CPU seconds the harness used meanwhile.
    pub cpu_s: f64,
}

/// Phase three: the workers run the workload until the time limit while
/// the nemesis injects faults; then the nemesis heals what it left.
pub async fn run_workload(
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
    let nemesis_task = tokio::spawn(test.nemesis.run(started, stop_rx));
    let progress = crate::run::progress::show(workers.clone(), test.active, deadline);
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
