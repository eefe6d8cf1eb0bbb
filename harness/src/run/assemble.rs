//! Phase two of a run: the test put together from the plan.

use crate::history::Recorder;
use crate::judge::Workload;
use crate::nemesis::context::Context;
use crate::nemesis::Nemesis;
use crate::plan::Plan;
use crate::run::cluster::Cluster;
use crate::runtime::AnyRuntime;
use crate::sut::System;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use workloads::{Generator, OrderingGenerator, RegisterGenerator, SutClient};

/// The test put together (Jepsen's test map made live): the client, the
/// generator and the nemesis, none of them started yet.
pub struct Assembly {
    /// The system's client, shared by the workers and the nemesis.
    pub client: Arc<SutClient>,
    /// The workload's generator.
    pub generator: Box<dyn Generator>,
    /// The nemesis, not started.
    pub nemesis: Nemesis,
    /// The faults in force, for the progress bar.
    pub active: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Phase two: the system's client, the workload's generator and the
/// nemesis, each seeded from the plan. A new fault is a file of the
/// nemesis's registry; nothing here changes.
pub fn assemble(
    plan: &Plan,
    cluster: &Cluster,
    recorder: &Recorder,
    runtime: Arc<Mutex<AnyRuntime>>,
) -> anyhow::Result<Assembly> {
    let client = Arc::new(
        plan.sut
            .client(&plan.sut_options(), cluster.endpoints.clone())?,
    );
    let generator: Box<dyn Generator> = match plan.workload {
        Workload::Ordering => Box::new(OrderingGenerator::new(plan.seed)),
        Workload::Register => Box::new(RegisterGenerator::new(plan.seed)),
    };
    let active = Arc::new(std::sync::Mutex::new(Vec::new()));
    let context = Context {
        membership: cluster.membership.clone(),
        founders: cluster.nodes.len(),
        client: client.clone(),
        runtime,
        probe: cluster.probe.clone(),
        recorder: recorder.clone(),
        interval: Duration::from_secs(plan.nemesis_interval_s),
        election_timeout_ms: plan.election_timeout_ms,
        aim_uncommitted_tail: plan.aim_uncommitted_tail,
        crash_prefer: plan.crash_prefer.clone(),
        tallies: Default::default(),
    };
    let nemesis = Nemesis {
        faults: plan.nemesis.clone(),
        context,
        active: active.clone(),
        seed: plan.seed,
        overlap: plan.nemesis_overlap,
    };
    Ok(Assembly {
        client,
        generator,
        nemesis,
        active,
    })
}
