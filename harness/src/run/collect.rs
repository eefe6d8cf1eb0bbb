//! Phase six of a run: each node's artifacts into its store directory
//! (metrics, the system's own documents such as NATS's `/varz` and `/jsz`,
//! log, Raft trace).

use crate::cluster::probe::Probe;
use crate::judge::raft::{TRACE_ERROR_FILE_NAME, TRACE_FILE_NAME};
use crate::plan::Plan;
use crate::runtime::verbs::Runtime;
use crate::runtime::AnyRuntime;
use crate::store::{write_json, RunDir};
use crate::sut::System;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Phase six: each node's artifacts into its store directory. A new
/// per-node artifact is one more step in this loop.
pub async fn collect(
    plan: &Plan,
    runtime: &Arc<Mutex<AnyRuntime>>,
    probe: &Probe,
    run_dir: &RunDir,
    nodes: &[String],
) -> anyhow::Result<()> {
    for n in nodes {
        let dir = run_dir.node_dir(n)?;
        write_json(&dir.join("metrics.json"), &probe.metrics(n).await)?;
        for (path, file) in plan.sut.artifacts() {
            match probe.get_json(n, path).await {
                Some(doc) => write_json(&dir.join(file), &doc)?,
                None => tracing::warn!(node = %n, path, "the node did not answer"),
            }
        }
        if let Err(e) = runtime
            .lock()
            .await
            .collect_log(n, &dir.join("node.log"))
            .await
        {
            tracing::warn!(node = %n, error = %e, "could not collect the node log");
        }
        if plan.sut.traces() {
            if let Err(e) = collect_trace(runtime, n, &dir).await {
                tracing::warn!(node = %n, error = %e, "could not collect the node's Raft trace");
                // The raft checker names it in its `unknown` verdict.
                let why = dir.join(TRACE_ERROR_FILE_NAME);
                std::fs::write(&why, format!("{e:#}\n"))
                    .with_context(|| format!("writing {}", why.display()))?;
            }
        }
    }
    Ok(())
}

/// Collect step: copies the node's trace into its store directory. The
/// node is paused while the file is copied, so that no write(2) is seen
/// half done (a stopped task finishes its syscall first); a node that
/// cannot be paused (dead) is copied as it is.
pub async fn collect_trace(
    runtime: &Arc<Mutex<AnyRuntime>>,
    node: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut rt = runtime.lock().await;
    let paused = rt.pause(node).await.is_ok();
    let copied = rt.collect_trace(node, &dir.join(TRACE_FILE_NAME)).await;
    if paused {
        rt.resume(node).await?;
    }
    copied
}
