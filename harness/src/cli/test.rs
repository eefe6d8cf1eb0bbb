//! The default command: run a test (`--test-count` times), print each
//! run's verdicts and, when one is not valid, the command that reruns it.

use crate::judge::verdict::{exit_code, print, worst as worse};
use crate::plan::args::TestArgs;
use crate::plan::Plan;
use crate::run::{run_test, RuntimeSlot};
use checker::verdict::Validity;

/// Runs the test `--test-count` times, fresh seeds after the first,
/// stopping at the first invalid run; the exit code of the worst verdict.
pub async fn run_tests(args: &TestArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let mut worst = Validity::Valid;
    let mut args = args.clone();
    for attempt in 0..args.test_count.max(1) {
        if attempt > 0 {
            args.seed = None;
        }
        let plan = Plan::resolve(&args)?;
        let binary = plan.sut_binary()?;
        let outcome = run_test(&plan, &binary, slot).await?;
        let (ok, fail, info) = outcome.counts;
        println!(
            "\n{} seed {}: {} ops (ok {ok}, fail {fail}, info {info}) in {:.0} s",
            plan.name,
            plan.seed,
            ok + fail + info,
            outcome.workload_s
        );
        print(&outcome.results);
        println!("store: {}", outcome.dir.display());
        let valid = outcome.results.valid;
        if valid != Validity::Valid {
            println!("rerun: {}", plan.rerun_command());
        }
        worst = worse(worst, valid);
        if valid == Validity::Invalid {
            break;
        }
    }
    Ok(exit_code(worst))
}
