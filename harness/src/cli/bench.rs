//! `harness bench`: the harness measured against itself (one run without
//! faults, as fast as the cluster answers), and `--compare-faultfs`: the
//! same with plain data directories and on faultfs, alternately.

use crate::judge::verdict::{exit_code, worst as worse};
use crate::plan::args::TestArgs;
use crate::plan::Plan;
use crate::run::{run_test, RuntimeSlot};
use checker::verdict::Validity;
use serde_json::json;

/// `harness bench`: one run with no faults, as fast as the cluster
/// answers (`--rate` defaults to 0 here); prints the ops/s recorded and
/// the recorder thread's CPU share.
pub async fn bench(args: &TestArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    // No faults, one run (`--rate` defaults to 0 here: as fast as the
    // cluster answers): what the harness can record.
    if args.nemesis != "none" || args.test_count != 1 || args.nemesis_interval_s != 10 {
        anyhow::bail!("harness bench runs one test without faults: --nemesis, --nemesis-interval-s and --test-count are not bench flags");
    }
    let plan = Plan::resolve(args)?;
    let binary = plan.sut_binary()?;
    let outcome = run_test(&plan, &binary, slot).await?;
    let cpu = outcome.workload_cpu_s;
    let (ok, fail, info) = outcome.counts;
    let ops = ok + fail + info;
    let line = serde_json::json!({
        "ops": ops, "events": outcome.events, "workload_s": outcome.workload_s,
        "ops_per_s_recorded": ops as f64 / outcome.workload_s,
        "harness_cpu_s_during_workload": cpu, "recorder_cpu_s": outcome.recorder_busy.as_secs_f64(),
        "recorder_share_of_harness_cpu": outcome.recorder_busy.as_secs_f64() / cpu.max(1e-9),
        "concurrency": plan.concurrency, "rate": plan.rate,
    });
    println!("{line}");
    Ok(exit_code(outcome.results.valid))
}

/// Rounds of `harness bench --compare-faultfs`, each a plain run and a
/// faultfs run (their order alternating between rounds).
const BENCH_ROUNDS: usize = 2;

/// `harness bench --compare-faultfs`: the max-rate benchmark with every
/// data directory plain and on faultfs, alternately, in one command;
/// prints each run's ops/s and the ratio of the medians (faultfs / plain).
pub async fn compare_faultfs(args: &TestArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut worst = Validity::Valid;
    for round in 0..BENCH_ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for faultfs in order {
            let mut a = args.clone();
            a.nemesis = "none".into();
            a.rate = 0.0;
            a.faultfs = faultfs;
            let plan = Plan::resolve(&a)?;
            let binary = plan.sut_binary()?;
            let outcome = run_test(&plan, &binary, slot).await?;
            let (ok, fail, info) = outcome.counts;
            let rate = (ok + fail + info) as f64 / outcome.workload_s.max(1e-9);
            let side = if faultfs { "faultfs" } else { "plain" };
            println!(
                "{}",
                json!({"round": round, "disk": side, "ops_per_s": rate, "ok": ok, "seed": plan.seed})
            );
            rates[usize::from(faultfs)].push(rate);
            worst = worse(worst, outcome.results.valid);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let (plain, fs) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "{}",
        json!({"plain_ops_per_s": plain, "faultfs_ops_per_s": fs, "ratio": fs / plain.max(1e-9), "rounds": BENCH_ROUNDS})
    );
    Ok(exit_code(worst))
}
