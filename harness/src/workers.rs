//! Client workers: each takes the next op from the shared seeded generator,
//! records its invoke, carries it out through the workload's client and
//! records the completion. As in Jepsen, process `p` talks to node
//! `p mod n` only, so that during a partition the processes bound to the
//! majority go on while those bound to the minority wait or fail. A process
//! whose op ended in `info` is retired and the worker continues under a
//! fresh process number (`p + concurrency`, usually another node).

use crate::history::{Kind, Process, Record, Recorder, F};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::{Completion, Generator, Invocation, Outcome, SutClient};

/// Counts for the progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    /// Completed `ok`.
    pub ok: AtomicU64,
    /// Completed `fail`.
    pub fail: AtomicU64,
    /// Completed `info`.
    pub info: AtomicU64,
}

impl Counters {
    /// (ok, fail, info).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// What every worker shares.
pub struct Workers {
    /// The op source.
    pub generator: Mutex<Box<dyn Generator>>,
    /// The client.
    pub client: Arc<SutClient>,
    /// The history.
    pub recorder: Recorder,
    /// Node names by index.
    pub nodes: Vec<String>,
    /// Stop issuing ops at this instant.
    pub deadline: Instant,
    /// Target ops/s over all workers; 0 = as fast as answers come.
    pub rate: f64,
    /// When the run began (pacing origin).
    pub started: Instant,
    /// Next pacing slot.
    pub slot: AtomicU64,
    /// Number of workers (process numbers advance by this).
    pub concurrency: u64,
    /// Outcome counts.
    pub counters: Counters,
}

impl Workers {
    /// Runs worker `w` until the deadline.
    pub async fn run(self: Arc<Self>, w: u64) {
        let mut process = w;
        while Instant::now() < self.deadline {
            if self.rate > 0.0 {
                let due = self.next_due();
                if due >= self.deadline {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
            }
            let Some(inv) = self
                .generator
                .lock()
                .expect("generator lock")
                .next_invocation()
            else {
                return;
            };
            if self.perform(process, &inv).await {
                process += self.concurrency;
            }
        }
    }

    /// The instant of the next pacing slot. Slots missed while every worker
    /// waited (a fault stalls them all) are skipped, not made up: catching
    /// up would fire a burst of ops far above `--rate` at the heal.
    fn next_due(&self) -> Instant {
        let now_slot = (self.started.elapsed().as_secs_f64() * self.rate) as u64;
        let k = self.slot.fetch_add(1, Ordering::Relaxed);
        let k = if k < now_slot {
            // Behind: move the shared counter to the present.
            self.slot.fetch_max(now_slot + 1, Ordering::Relaxed);
            now_slot
        } else {
            k
        };
        self.started + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Records and performs one op; true when it ended in `info`.
    async fn perform(&self, process: u64, inv: &Invocation) -> bool {
        let node_index = process as usize % self.nodes.len();
        let node = self.nodes[node_index].clone();
        let p = Process::Client(process);
        self.recorder.record(&Record {
            process: p,
            kind: Kind::Invoke,
            f: F::Op(inv.f),
            key: inv.key.as_deref(),
            value: &inv.value,
            node: Some(&node),
            error: None,
        });
        let Completion { outcome, .. } = self.client.invoke(inv, node_index).await;
        let (kind, value, error): (Kind, Value, Option<String>) = match outcome {
            Outcome::Ok(v) => {
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                (Kind::Ok, v, None)
            }
            Outcome::Fail(e) => {
                self.counters.fail.fetch_add(1, Ordering::Relaxed);
                (Kind::Fail, inv.value.clone(), Some(e))
            }
            Outcome::Info(e) => {
                self.counters.info.fetch_add(1, Ordering::Relaxed);
                (Kind::Info, inv.value.clone(), Some(e))
            }
        };
        self.recorder.record(&Record {
            process: p,
            kind,
            f: F::Op(inv.f),
            key: inv.key.as_deref(),
            value: &value,
            node: Some(&node),
            error: error.as_deref(),
        });
        kind == Kind::Info
    }
}
