//! Soak runs: tests back to back, rotating system under test × workload ×
//! nemesis with fresh seeds, keeping the evidence of every run that was not
//! valid.
//!
//! Layers inside: this file (the soak loop and its summary), then
//! `rotation.rs` (the turns), `crash_points.rs` (crash points summed), `shard.rs` (`--shard I/N`) and `merge.rs`
//! (`harness soak-merge`: shards' summaries into one table).

pub mod crash_points;
pub mod merge;
pub mod rotation;
pub mod shard;
pub mod steer;

use crate::judge::raft::CoverageSum;
use crate::judge::verdict::{exit_code, worst as worse};
use crate::plan::args::TestArgs;
use crate::plan::Plan;
use crate::run::{run_test, RuntimeSlot};
use crate::store::write_json;
use crate::sut::Sut;
use anyhow::Context;
use checker::verdict::Validity;
use crash_points::CrashPointSum;
use rand::{RngCore, SeedableRng};
use rotation::rotation;
use serde_json::{json, Value};
use shard::Shard;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// p99 latency (ms) of completed client ops in a history file.
fn p99_ms(history: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(history).ok()?;
    let mut open: HashMap<String, u64> = HashMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if e["process"] == "nemesis" {
            continue;
        }
        let (p, t) = (e["process"].to_string(), e["time"].as_u64().unwrap_or(0));
        if e["type"] == "invoke" {
            open.insert(p, t);
        } else if let Some(start) = open.remove(&p) {
            latencies.push(t.saturating_sub(start));
        }
    }
    latencies.sort_unstable();
    let i = (latencies.len() as f64 * 0.99).ceil() as usize;
    latencies
        .get(i.saturating_sub(1))
        .map(|ns| *ns as f64 / 1e6)
}

fn anomalies(results: &checker::verdict::Results) -> String {
    let found: Vec<String> = results
        .results
        .iter()
        .flat_map(|r| r.anomalies.iter())
        .filter(|a| a.count > 0)
        .map(|a| format!("{}×{}", a.kind, a.count))
        .collect();
    if found.is_empty() {
        "-".into()
    } else {
        found.join(" ")
    }
}

/// The flags the rotation chooses (hidden from `soak --help`) are refused
/// when given, rather than silently replaced.
fn refuse_rotated(args: &TestArgs) -> anyhow::Result<()> {
    if args.sut != "ordeal"
        || args.workload != "ordering"
        || args.nemesis != "none"
        || args.test_count != 1
    {
        anyhow::bail!("harness soak chooses each test's system (from --suts), workload and nemesis by its rotation and runs each once: --sut, --workload, --nemesis and --test-count are not soak flags");
    }
    Ok(())
}

/// How long a soak runs and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long to keep starting tests.
    pub duration: Duration,
    /// Valid runs whose store is kept (the most recent ones).
    pub keep_valid: usize,
    /// Runs at most.
    pub max_runs: usize,
}

/// Runs the soak; exit code 1 when any run was invalid.
pub async fn soak(
    args: &TestArgs,
    limits: Limits,
    suts: &[String],
    shard: Option<Shard>,
    steer: bool,
    slot: &RuntimeSlot,
) -> anyhow::Result<u8> {
    refuse_rotated(args)?;
    let Limits {
        duration,
        keep_valid,
        max_runs,
    } = limits;
    let turns = soak_turns(suts, shard)?;
    let master = args
        .seed
        .unwrap_or_else(|| rand::thread_rng().next_u64() >> 12);
    eprintln!(
        "soak: master seed {master}, {} s, systems {}",
        duration.as_secs(),
        suts.join(",")
    );
    let mut seeds = rand_chacha::ChaCha8Rng::seed_from_u64(master);
    let started = Instant::now();
    let mut rows: Vec<Value> = Vec::new();
    let mut kept_valid: Vec<PathBuf> = Vec::new();
    let mut worst = Validity::Valid;
    let mut sums = Steering::new(steer, master);
    let mut turn = 0usize;
    while started.elapsed() < duration && turn < max_runs {
        let seed = seeds.next_u64() >> 12;
        let (test, gap) = sums.next_test(args, &turns[turn % turns.len()], seed);
        turn += 1;
        let plan = Plan::resolve(&test)?;
        let binary = plan.sut_binary()?;
        let outcome = run_test(&plan, &binary, slot)
            .await
            .with_context(|| format!("soak test {} seed {}", plan.name, plan.seed))?;
        sums.add_run(&outcome.dir);
        let code = exit_code(outcome.results.valid);
        worst = worse(worst, outcome.results.valid);
        let (ok, fail, info) = outcome.counts;
        let verdict = serde_json::to_value(outcome.results.valid)?;
        let row = json!({"test": plan.name, "seed": plan.seed, "ops": ok + fail + info, "ok": ok, "fail": fail, "info": info,
            "verdict": verdict, "anomalies": anomalies(&outcome.results), "p99_ms": p99_ms(&outcome.dir.join("history.jsonl")),
            "store": outcome.dir, "aim_uncommitted_tail": plan.aim_uncommitted_tail, "rerun": if code == 0 { Value::Null } else { json!(plan.rerun_command()) },
            "steered_at": gap, "reached_so_far": sums.reached(), "elapsed_s": started.elapsed().as_secs()});
        if code == 0 {
            keep_recent(&mut kept_valid, outcome.dir.clone(), keep_valid)?;
        } else {
            println!(
                "soak: {} seed {} was {verdict}; rerun with:\n  {}",
                plan.name,
                plan.seed,
                plan.rerun_command()
            );
        }
        println!(
            "soak: run {turn} {} seed {}: {} ops, {verdict}, anomalies {}, reached {}, {:.0} s elapsed",
            plan.name,
            plan.seed,
            ok + fail + info,
            row["anomalies"].as_str().unwrap_or("-"),
            row["reached_so_far"],
            started.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    print_table(&rows, &sums.coverage, &sums.crash_points);
    let path = args.store.join("soak-summary.json");
    write_json(
        &path,
        &json!({"master_seed": master, "duration_s": started.elapsed().as_secs(), "runs": rows,
            "shard": shard.map(|s| s.to_string()), "raft_coverage": sums.coverage.to_json(), "crash_points": sums.crash_points.to_json(),
            "steered": steer}),
    )?;
    println!("summary: {}", path.display());
    Ok(exit_code(worst))
}

/// Salt that separates the steering's stream from the tests' seeds.
const STEER_SEED_SALT: u64 = 0x0073_7465_6572;

/// What the soak has summed so far, and how it chooses each test: the
/// rotation's turn, or with `--steer` a gap of the sums aimed at
/// (`steer.rs`) with the turn's system and workload.
struct Steering {
    coverage: CoverageSum,
    crash_points: CrashPointSum,
    /// The steering's seeded stream, when steering.
    steer: Option<rand_chacha::ChaCha8Rng>,
}

impl Steering {
    fn new(steer: bool, master: u64) -> Steering {
        Steering {
            coverage: CoverageSum::default(),
            crash_points: CrashPointSum::default(),
            steer: steer.then(|| rand_chacha::ChaCha8Rng::seed_from_u64(master ^ STEER_SEED_SALT)),
        }
    }

    /// The next test's flags, and the gap it aims at when steered.
    fn next_test(
        &mut self,
        args: &TestArgs,
        turn: &(String, &'static str, &'static str),
        seed: u64,
    ) -> (TestArgs, Option<String>) {
        let (sut, workload, nemesis) = turn.clone();
        let mut test = args.clone();
        test.sut = sut;
        test.workload = workload.into();
        test.nemesis = nemesis.into();
        test.seed = Some(seed);
        test.test_count = 1;
        test.aim_uncommitted_tail |= self.coverage.uncommitted_tail_rare();
        let gap = self.aim(&mut test);
        (test, gap)
    }

    /// Aims an ordeal test at a gap, when steering and one is open.
    fn aim(&mut self, test: &mut TestArgs) -> Option<String> {
        let rng = self.steer.as_mut()?;
        if test.sut != "ordeal" {
            return None;
        }
        let situations = self.coverage.never_reached();
        let points = self.crash_points.never_reached();
        let aimed = steer::steer(&situations, &points, rng)?;
        test.nemesis = aimed.nemesis.into();
        test.nemesis_overlap = aimed.overlap;
        test.snapshot_interval_bytes = test
            .snapshot_interval_bytes
            .or(aimed.snapshot_interval_bytes);
        test.crash_prefer = aimed.crash_points.join(",");
        Some(aimed.gap)
    }

    fn add_run(&mut self, dir: &Path) {
        self.coverage.add_run(dir);
        self.crash_points.add_run(dir);
    }

    /// Coverage so far: the Raft situations and crash points reached.
    fn reached(&self) -> Value {
        let situations = model::replay::COVERAGE.len() - self.coverage.never_reached().len();
        let points = node::crash_points::Point::ALL.len() - self.crash_points.never_reached().len();
        json!({"situations": situations, "crash_points": points})
    }
}

/// The turns this soak runs: the rotation of `suts`, or a shard's part.
fn soak_turns(
    suts: &[String],
    shard: Option<Shard>,
) -> anyhow::Result<Vec<(String, &'static str, &'static str)>> {
    check_suts(suts)?;
    let turns = rotation(suts);
    if turns.is_empty() {
        anyhow::bail!("--suts: no system under test to soak");
    }
    match shard {
        Some(shard) => shard.select(&turns),
        None => Ok(turns),
    }
}

/// Refuses a name in `--suts` that is no system under test.
fn check_suts(suts: &[String]) -> anyhow::Result<()> {
    match suts.iter().find(|s| s.parse::<Sut>().is_err()) {
        Some(bad) => anyhow::bail!(
            "--suts: unknown system `{bad}` (expected a comma list of {}, or auto)",
            Sut::listed("and")
        ),
        None => Ok(()),
    }
}

/// Adds a valid run's store to `kept`, removing the oldest beyond `keep`.
fn keep_recent(kept: &mut Vec<PathBuf>, dir: PathBuf, keep: usize) -> anyhow::Result<()> {
    kept.push(dir);
    if kept.len() > keep {
        let old = kept.remove(0);
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// The runs, then the raft coverage and the crash points summed over
/// them.
fn print_table(rows: &[Value], coverage: &CoverageSum, crash_points: &CrashPointSum) {
    println!(
        "\n{:<44} {:>18} {:>7} {:>8} {:>9}  anomalies",
        "test", "seed", "ops", "verdict", "p99_ms"
    );
    for r in rows {
        let p99 = r["p99_ms"]
            .as_f64()
            .map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<44} {:>18} {:>7} {:>8} {:>9}  {}",
            r["test"].as_str().unwrap_or(""),
            r["seed"],
            r["ops"],
            r["verdict"].to_string(),
            p99,
            r["anomalies"].as_str().unwrap_or("")
        );
    }
    coverage.print();
    crash_points.print();
}
