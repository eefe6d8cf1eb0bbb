//! Phase one of a run, and what it needs: the runtime the plan names, the
//! cluster started on it with a first leader (or, when none is elected,
//! each node's state and the end of its log, to say why).

use crate::cluster::membership::Membership;
use crate::cluster::probe::Probe;
use crate::nemesis::package::FaultPackage;
use crate::plan::Plan;
use crate::runtime::clock::FAKETIME_LIB;
use crate::runtime::disk::{faultfs_binary, fuse_unavailable, DiskSpec};
use crate::runtime::docker::DockerRuntime;
use crate::runtime::process::{ProcessOptions, ProcessRuntime};
use crate::runtime::ssh::{SshOptions, SshRuntime};
use crate::runtime::verbs::{ClusterSpec, Runtime};
use crate::runtime::{AnyRuntime, RuntimeKind};
use crate::store::RunDir;
use crate::sut::System;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a fresh cluster may take to elect its first leader.
const FIRST_LEADER_WAIT_MAX: Duration = Duration::from_secs(30);

/// The runtime the plan names, for its system and faults (nothing started).
pub fn build_runtime(plan: &Plan, binary: &Path, label: &str) -> anyhow::Result<AnyRuntime> {
    let spec = ClusterSpec {
        sut: plan.sut,
        nodes: plan.nodes.len(),
        binary: binary.to_path_buf(),
        node_args: plan.sut.node_flags(&plan.sut_options()),
        // Absolute: Docker bind-mounts the clock directory from it.
        work_dir: std::path::absolute(&plan.store)
            .unwrap_or_else(|_| plan.store.clone())
            .join(".work")
            .join(label),
        run_label: label.to_string(),
        disk: disk_spec(plan)?.map(Box::new),
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
        RuntimeKind::Docker => Ok(AnyRuntime::Docker(Box::new(DockerRuntime::new(spec)?))),
        RuntimeKind::Ssh => {
            let options = SshOptions {
                hosts: plan.hosts.clone(),
                trust: plan.ssh_trust.clone(),
                verbs: plan
                    .nemesis
                    .iter()
                    .flat_map(|f| f.verbs())
                    .copied()
                    .collect(),
            };
            let runtime = SshRuntime::new(spec, options)?;
            Ok(AnyRuntime::Ssh(Box::new(runtime)))
        }
    }
}

/// The runtime's disk spec for a plan: faultfs mounts when a fault of the
/// plan needs them or the plan asks for them (`--faultfs`); faultfs built
/// in release, as the node is.
fn disk_spec(plan: &Plan) -> anyhow::Result<Option<DiskSpec>> {
    if !plan.faultfs && !plan.nemesis.iter().any(|f| f.needs_faultfs()) {
        return Ok(None);
    }
    if let Some(why) = fuse_unavailable() {
        bail!("faultfs cannot be mounted here: {why}");
    }
    Ok(Some(DiskSpec {
        binary: faultfs_binary("release")?,
        seed: plan.seed,
    }))
}

/// A node's name and an address of it.
type NamedAddress = (String, String);

/// A started cluster with a leader.
pub struct Cluster {
    /// Each node's name and client URL.
    pub nodes: Vec<(String, String)>,
    /// Each node's name and what the system's client dials
    /// (`System::client_endpoint`).
    pub endpoints: Vec<(String, String)>,
    /// Status queries against the nodes.
    pub probe: Probe,
    /// Every node started in the run and its standing (the `member`
    /// nemesis adds and removes; workers, final reads and recovery read).
    pub membership: Membership,
}

/// Phase one: starts every node and waits for the first leader.
pub async fn start(
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
    let (nodes, endpoints): (Vec<NamedAddress>, Vec<NamedAddress>) = {
        let rt = runtime.lock().await;
        rt.nodes()
            .into_iter()
            .map(|n| {
                let url = rt.client_url(&n);
                let endpoint = plan
                    .sut
                    .client_endpoint(url.clone(), rt.protocol_address(&n));
                ((n.clone(), url), (n, endpoint))
            })
            .unzip()
    };
    plan.sut
        .ready(&plan.sut_options(), &endpoints)
        .await
        .with_context(|| format!("readying the {} cluster", plan.sut.name()))?;
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
        endpoints,
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
