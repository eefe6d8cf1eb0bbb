//! `harness bench`: the harness measured against itself (one run without
//! faults, as fast as the cluster answers), and `--compare-faultfs`: the
//! same with plain data directories and on faultfs, alternately.

use crate::judge::verdict::{exit_code, worst as worse};
use crate::plan::args::TestArgs;
use crate::plan::Plan;
use crate::run::{run_test, RunOutcome, RuntimeSlot};
use crate::sut::{Sut, System};
use checker::verdict::Validity;
use serde_json::{json, Value};
use std::path::Path;

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
        "sut": plan.sut.name(), "workload": plan.workload.name(),
        "latency_ms": latencies(&outcome.dir),
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

/// Client counts `harness bench --compare-suts` measures each system at.
pub const COMPARE_CLIENTS: [usize; 2] = [64, 256];

/// Each op kind's latency quantiles (ms) of a run, from its
/// `summary.json`: `{"submit": {"p50": …, "p99": …, "max": …}, …}`.
fn latencies(dir: &Path) -> Value {
    let summary: Value = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    for kind in summary["kinds"].as_array().into_iter().flatten() {
        if let Some(f) = kind["f"].as_str() {
            let l = &kind["latency_ms"];
            out.insert(
                f.into(),
                json!({"p50": l["p50"], "p99": l["p99"], "max": l["max"]}),
            );
        }
    }
    Value::Object(out)
}

/// The workload a system is benchmarked with: `--workload` when it takes
/// it, else the first of its soak rotation (etcd: register).
fn bench_workload(args: &TestArgs, sut: Sut) -> String {
    let asked = crate::sut::Asked {
        workload: &args.workload,
        read_mode: &args.read_mode,
        bugs: &[],
    };
    match sut.allows(&asked) {
        Ok(_) => args.workload.clone(),
        Err(_) => sut.rotation()[0].0.to_string(),
    }
}

/// One line of the comparison: a system at a client count.
fn compare_line(plan: &Plan, outcome: &RunOutcome) -> Value {
    let (ok, fail, info) = outcome.counts;
    let latency = latencies(&outcome.dir);
    let write = ["submit", "write"]
        .iter()
        .find_map(|f| latency.get(*f).cloned())
        .unwrap_or(Value::Null);
    json!({
        "sut": plan.sut.name(), "workload": plan.workload.name(),
        "clients": plan.concurrency, "seed": plan.seed,
        "ops_per_s": (ok + fail + info) as f64 / outcome.workload_s.max(1e-9),
        "ok": ok, "fail": fail, "info": info,
        "write_latency_ms": write, "latency_ms": latency,
        "valid": outcome.results.valid,
    })
}

/// `harness bench --compare-suts ordeal,nats,etcd`: the max-rate benchmark
/// of each system at 64 and 256 clients ([`COMPARE_CLIENTS`]), one after
/// another in one command, each with the workload it takes; prints a JSON
/// line per run, then a table of ops/s and write latency.
pub async fn compare_suts(args: &TestArgs, suts: &str, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let suts: Vec<Sut> = suts
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<Sut>()
                .map_err(|e| anyhow::anyhow!("--compare-suts: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut lines = Vec::new();
    let mut worst = Validity::Valid;
    for &sut in &suts {
        for clients in COMPARE_CLIENTS {
            let mut a = args.clone();
            a.sut = sut.name().to_string();
            a.workload = bench_workload(args, sut);
            a.concurrency = clients;
            a.nemesis = "none".into();
            a.rate = 0.0;
            let plan = Plan::resolve(&a)?;
            let binary = plan.sut_binary()?;
            let outcome = run_test(&plan, &binary, slot).await?;
            let line = compare_line(&plan, &outcome);
            println!("{line}");
            worst = worse(worst, outcome.results.valid);
            lines.push(line);
        }
    }
    println!("\nsut      workload  clients    ops/s  write p50 ms  write p99 ms  valid");
    let ms = |v: &Value| v.as_f64().map_or("-".to_string(), |m| format!("{m:.1}"));
    for l in &lines {
        println!(
            "{:<8} {:<9} {:>7} {:>8.0} {:>13} {:>13}  {}",
            l["sut"].as_str().unwrap_or(""),
            l["workload"].as_str().unwrap_or(""),
            l["clients"].as_u64().unwrap_or(0),
            l["ops_per_s"].as_f64().unwrap_or(0.0),
            ms(&l["write_latency_ms"]["p50"]),
            ms(&l["write_latency_ms"]["p99"]),
            l["valid"],
        );
    }
    Ok(exit_code(worst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn each_system_is_compared_on_a_workload_it_takes() {
        let cli = crate::cli::Cli::try_parse_from(["harness", "--workload", "ordering"]).unwrap();
        assert_eq!(bench_workload(&cli.test, Sut::Ordeal), "ordering");
        assert_eq!(bench_workload(&cli.test, Sut::Nats), "ordering");
        assert_eq!(bench_workload(&cli.test, Sut::Etcd), "register");
    }

    #[test]
    fn latencies_are_read_per_op_kind_from_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let summary = json!({"kinds": [{"f": "submit", "latency_ms": {"p50": 2.0, "p99": 9.5, "max": 30.0}}]});
        std::fs::write(dir.path().join("summary.json"), summary.to_string()).unwrap();
        let l = latencies(dir.path());
        assert_eq!(l["submit"], json!({"p50": 2.0, "p99": 9.5, "max": 30.0}));
        assert_eq!(latencies(&dir.path().join("missing")), json!({}));
    }
}
