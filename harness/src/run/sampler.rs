//! The status sampler: every node's `/status` (in ordeal-node's shape),
//! polled from the start of the workload until the cluster has recovered,
//! written to `status.jsonl` on the history's clock (docs/store.md). The
//! report reads it for catch-up times, leader changes and snapshot counts
//! across restarts; `judge` for the catch-up (liveness) check.

use crate::cluster::probe::Probe;
use crate::history::Recorder;
use anyhow::Context;
use serde_json::json;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often every node is asked.
pub const STATUS_SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// The sampling task; [`Sampler::stop`] ends it and flushes the file.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Sampler {
    /// Creates `path` and starts polling every node `probe` knows, each
    /// round (nodes the `member` nemesis adds to it are sampled from then on).
    pub fn start(path: &Path, probe: Probe, recorder: Recorder) -> anyhow::Result<Sampler> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let (stop, mut stopped) = watch::channel(false);
        let shown = path.display().to_string();
        let task = tokio::spawn(async move {
            let mut out = BufWriter::new(file);
            loop {
                let round = Instant::now();
                let nodes = probe.names();
                let asked = nodes.iter().map(|n| probe.status(n));
                let answers = futures_util::future::join_all(asked).await;
                let time = recorder.time_of(Instant::now());
                for (node, status) in nodes.iter().zip(answers) {
                    let line = json!({"time": time, "node": node, "status": status});
                    writeln!(out, "{line}").with_context(|| format!("writing {shown}"))?;
                }
                let rest = STATUS_SAMPLE_PERIOD.saturating_sub(round.elapsed());
                if crate::nemesis::context::sleep_or_stop(&mut stopped, rest).await {
                    break;
                }
            }
            out.flush().with_context(|| format!("writing {shown}"))
        });
        Ok(Sampler { stop, task })
    }

    /// Stops polling and writes what is buffered.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("the status sampler panicked")?
    }
}
