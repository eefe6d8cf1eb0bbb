//! Phase four of a run: every fault undone, whatever the nemesis left, and
//! the members given time to recover.

use crate::cluster::membership::Membership;
use crate::cluster::probe::Probe;
use crate::judge::catchup::Recovery;
use crate::nemesis::disk::heal_all;
use crate::nemesis::package::FaultPackage;
use crate::plan::Plan;
use crate::run::crashes::CrashWatch;
use crate::runtime::verbs::Runtime;
use crate::runtime::AnyRuntime;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Phase four: undoes every fault, whatever the nemesis left, on every
/// node the runtime runs (those the `member` nemesis started included),
/// and gives the members `recovery_s` to elect a leader and catch up;
/// returns whether they did (`recovery.json`: the catch-up checker judges
/// a failure as the liveness failure it is). Removed nodes are not waited
/// for: they halted and never catch up.
pub async fn heal_and_recover(
    plan: &Plan,
    runtime: &Arc<Mutex<AnyRuntime>>,
    probe: &Probe,
    membership: &Membership,
    crash_watch: &CrashWatch,
) -> anyhow::Result<Recovery> {
    {
        let mut rt = runtime.lock().await;
        // A node that ended by itself is noticed (and counts as down)
        // before the restarts below bring it back.
        crash_watch.poll(&mut rt).await;
        rt.heal().await?;
        for n in &rt.nodes() {
            rt.resume(n).await?;
            rt.restart(n).await?;
            for fault in &plan.nemesis {
                fault.teardown(&mut rt, n).await?;
            }
        }
        if plan.nemesis.iter().any(|f| f.needs_faultfs()) {
            let started = rt.nodes();
            heal_all(&mut rt, &started).await?;
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
    Ok(Recovery {
        recovered,
        recovery_s: plan.recovery_s as f64,
        members,
    })
}
