//! `harness replay RUN_DIR_OR_SCHEDULE`: a recorded schedule run again as
//! exactly as real processes allow — the plan rebuilt from the schedule's
//! command line with its seed (so the same node configuration and the same
//! workload), the same faults on the same targets at the same offsets from
//! the workload's start, nothing drawn — and how far it drifted
//! (`drift.json` in the new run's store).

use crate::judge::verdict::{exit_code, print};
use crate::nemesis::package::FaultPackage;
use crate::nemesis::schedule::{Drift, Schedule};
use crate::plan::args::TestArgs;
use crate::plan::Plan;
use crate::run::{run_test, RunOutcome, RuntimeSlot};
use crate::store::write_json;
use anyhow::{bail, Context};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `harness replay` and `harness shrink` take besides the schedule.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Where the replay's run directory goes.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The node binary (default: the one the workspace builds).
    #[arg(long, env = "ORDEAL_NODE_BIN")]
    pub node_binary: Option<PathBuf>,
}

/// A test's command line (a test's flags only).
#[derive(Debug, Parser)]
struct TestLine {
    #[command(flatten)]
    test: TestArgs,
}

/// The plan of `schedule`'s run, to replay it: its command line parsed
/// again, with its seed and timings, the schedule given to the nemesis.
pub fn plan_for(schedule: &Schedule, source: &Path, args: &ReplayArgs) -> anyhow::Result<Plan> {
    let line = &schedule.command_line;
    let Some((_, flags)) = line.split_once(" -- ") else {
        bail!("schedule: command line `{line}` has no ` -- ` before the test's flags");
    };
    let words = std::iter::once("harness").chain(flags.split_whitespace());
    let parsed = TestLine::try_parse_from(words)
        .with_context(|| format!("schedule: parsing the command line `{line}`"))?;
    let mut test = parsed.test;
    // The line pins every setting the run had; one it does not name is a
    // setting the harness gained since, which the run ran at its default
    // (rerun lines from before `--swarm off` was written into them).
    if !flags.split_whitespace().any(|w| w == "--swarm") {
        test.swarm = "off".into();
    }
    test.seed = Some(schedule.seed);
    test.time_limit_s = schedule.clock.time_limit_s;
    test.nemesis_interval_s = schedule.clock.nemesis_interval_s;
    test.recovery_s = schedule.clock.recovery_s;
    test.store = args.store.clone();
    if args.node_binary.is_some() {
        test.node_binary = args.node_binary.clone();
    }
    let mut plan = Plan::resolve(&test)?;
    for f in &schedule.faults {
        if !plan.nemesis.iter().any(|n| n.name() == f.name) {
            bail!(
                "schedule: fault `{}` is not among the plan's faults ({}): the run would not prepare for it",
                f.name,
                plan.nemesis.iter().map(|n| n.name()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    plan.replay_of = Some(source.display().to_string());
    plan.script = Some(Arc::new(schedule.as_plan()));
    Ok(plan)
}

/// Runs `schedule` once; writes the new run's `drift.json`.
pub async fn replay_once(
    schedule: &Schedule,
    source: &Path,
    args: &ReplayArgs,
    slot: &RuntimeSlot,
) -> anyhow::Result<(RunOutcome, Drift)> {
    let plan = plan_for(schedule, source, args)?;
    let binary = plan.sut_binary()?;
    let outcome = run_test(&plan, &binary, slot).await?;
    let (replayed, _) = Schedule::read(&outcome.dir)?;
    let drift = Drift::between(schedule, &replayed);
    write_json(
        &outcome.dir.join("drift.json"),
        &serde_json::to_value(&drift)?,
    )?;
    Ok((outcome, drift))
}

/// `harness replay`: runs the schedule at `path` again, prints its
/// verdicts and drift; the exit code of the verdict.
pub async fn replay(path: &Path, args: &ReplayArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let (schedule, file) = Schedule::read(path)?;
    eprintln!(
        "ordeal: replaying {} ({} faults, seed {}, {} s)",
        file.display(),
        schedule.faults.len(),
        schedule.seed,
        schedule.clock.time_limit_s
    );
    let (outcome, drift) = replay_once(&schedule, &file, args, slot).await?;
    print(&outcome.results);
    print_drift(&drift);
    println!("store: {}", outcome.dir.display());
    Ok(exit_code(outcome.results.valid))
}

/// The drift table: each fault's planned and actual start.
pub fn print_drift(drift: &Drift) {
    println!(
        "\n{:<11} {:<12} {:>11} {:>11} {:>9} {:>14}",
        "fault", "targets", "planned_ms", "actual_ms", "drift_ms", "in_force_drift"
    );
    for f in &drift.faults {
        println!(
            "{:<11} {:<12} {:>11} {:>11} {:>9} {:>14}",
            f.name,
            f.targets.join(","),
            f.planned_start_ms,
            f.actual_start_ms,
            f.start_drift_ms,
            f.in_force_drift_ms.map_or("-".into(), |d| d.to_string())
        );
    }
    let ms = |v: Option<i64>| v.map_or("-".into(), |v| format!("{v} ms"));
    println!(
        "drift of start: median {}, worst {}; in force: median {}, worst {}; not started: {}",
        ms(drift.start_drift_ms_median),
        ms(drift.start_drift_ms_worst),
        ms(drift.in_force_drift_ms_median),
        ms(drift.in_force_drift_ms_worst),
        drift.not_started
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::schedule::{ScheduleClock, ScheduledFault, SCHEDULE_VERSION};
    use serde_json::Value;

    fn schedule(command_line: &str, fault: &str) -> Schedule {
        Schedule {
            version: SCHEDULE_VERSION,
            seed: 77,
            clock: ScheduleClock {
                time_limit_s: 25,
                nemesis_interval_s: 4,
                recovery_s: 6,
                election_timeout_ms: 1000,
            },
            command_line: command_line.into(),
            plan: Value::Null,
            replay_of: None,
            faults: vec![ScheduledFault {
                name: fault.into(),
                targets: vec!["n2".into()],
                params: Value::Null,
                heal: None,
                start_ms: 1_000,
                end_ms: 2_000,
                actual: None,
            }],
        }
    }

    #[test]
    fn the_plan_is_the_original_s_with_the_schedule_s_seed_timings_and_faults() {
        let line = "cargo run -p harness -- --workload register --nemesis kill,pause --nodes 5 --time-limit-s 60 --runtime process --seed 3 --bug ack-before-commit --snapshot-interval-bytes 4096";
        let args = ReplayArgs {
            store: "elsewhere".into(),
            node_binary: None,
        };
        let plan = plan_for(&schedule(line, "kill"), Path::new("s.json"), &args).unwrap();
        assert_eq!(
            (
                plan.seed,
                plan.time_limit_s,
                plan.nemesis_interval_s,
                plan.recovery_s
            ),
            (77, 25, 4, 6)
        );
        assert_eq!(
            (
                plan.nodes.len(),
                plan.bugs.clone(),
                plan.node_config.snapshot_interval_bytes
            ),
            (5, vec!["ack-before-commit".to_string()], 4096)
        );
        assert_eq!(plan.store, Path::new("elsewhere"));
        assert_eq!(plan.replay_of.as_deref(), Some("s.json"));
        let script = plan.script.unwrap();
        assert_eq!(
            (script.faults.len(), script.faults[0].targets.clone()),
            (1, vec!["n2".to_string()])
        );

        let e = plan_for(&schedule(line, "partition"), Path::new("s.json"), &args).unwrap_err();
        assert!(
            format!("{e:#}")
                .contains("fault `partition` is not among the plan's faults (kill, pause)"),
            "{e:#}"
        );
        let e = plan_for(
            &schedule("harness --seed 3", "kill"),
            Path::new("s.json"),
            &args,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("no ` -- `"), "{e:#}");
    }
}
