//! The watch on the nodes' processes: from the cluster's start until the
//! final reads are done, the runtime is asked every [`POLL`] which nodes
//! ended by themselves ([`Runtime::exits`]: never the ones it stopped), and
//! each is kept with the history time it was noticed. At the end they go
//! to `crashes.json` with the names of the run's faults that stop their
//! targets' processes; the `crashed` checker (`judge/crashed.rs`) judges
//! them against the faults then in force.

use crate::history::Recorder;
use crate::judge::crashed::{Crashes, Noticed, CRASHES_JSON};
use crate::nemesis::package::FaultPackage;
use crate::plan::Plan;
use crate::runtime::verbs::Runtime;
use crate::runtime::AnyRuntime;
use crate::store::write_json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// How often the runtime is asked (the precision of an exit's time).
pub const POLL: Duration = Duration::from_millis(500);

/// The exits noticed so far, and the task that polls; the task stops when
/// this is dropped, on every path out.
pub struct CrashWatch {
    noticed: Arc<std::sync::Mutex<Vec<Noticed>>>,
    recorder: Recorder,
    task: JoinHandle<()>,
}

impl CrashWatch {
    /// Starts polling `runtime`.
    pub fn start(runtime: Arc<Mutex<AnyRuntime>>, recorder: &Recorder) -> CrashWatch {
        let noticed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (kept, r) = (noticed.clone(), recorder.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let exits = runtime.lock().await.exits().await;
                keep(&kept, &r, exits);
            }
        });
        CrashWatch {
            noticed,
            recorder: recorder.clone(),
            task,
        }
    }

    /// Asks the runtime now, under a lock the caller holds (the final heal
    /// asks before it restarts the nodes that are down).
    pub async fn poll(&self, rt: &mut AnyRuntime) {
        let exits = rt.exits().await;
        keep(&self.noticed, &self.recorder, exits);
    }

    /// Stops polling after a last look, and writes `crashes.json` into
    /// `run_dir`; returns how many exits were noticed.
    pub async fn finish(
        self,
        plan: &Plan,
        runtime: &Arc<Mutex<AnyRuntime>>,
        run_dir: &Path,
    ) -> anyhow::Result<usize> {
        self.task.abort();
        self.poll(&mut *runtime.lock().await).await;
        let crashes = Crashes {
            stopping_faults: plan
                .nemesis
                .iter()
                .filter(|f| f.stops_process())
                .map(|f| f.name().to_string())
                .collect(),
            exits: std::mem::take(&mut *self.noticed.lock().expect("crash watch lock")),
        };
        write_json(
            &run_dir.join(CRASHES_JSON),
            &serde_json::to_value(&crashes)?,
        )?;
        Ok(crashes.exits.len())
    }
}

impl Drop for CrashWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps each exit with the time it was noticed.
fn keep(
    noticed: &std::sync::Mutex<Vec<Noticed>>,
    recorder: &Recorder,
    exits: Vec<crate::runtime::exit::Exit>,
) {
    if exits.is_empty() {
        return;
    }
    let time_s = recorder.time_of(Instant::now()) as f64 / 1e9;
    let mut noticed = noticed.lock().expect("crash watch lock");
    for exit in exits {
        tracing::warn!(node = %exit.node, status = %exit.status, time_s, "a node ended by itself");
        noticed.push(Noticed { time_s, exit });
    }
}
