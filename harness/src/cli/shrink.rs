//! `harness shrink RUN_DIR`: the schedule of a failing run delta-debugged
//! (`nemesis/shrink.rs`) by replaying candidates on real clusters until
//! no single fault can be removed, or the budget is spent; `shrunk.json`
//! in RUN_DIR, rewritten after every improvement (so Ctrl-C keeps the
//! best so far), and the command that replays it.
//!
//! A run reproduces when one of the anomaly kinds the original found
//! (`checker:kind`, from its `results.json`; or the one `--anomaly`
//! names) comes back, not merely any invalid verdict.
//!
//! The shrinker's last step puts the node settings the run drew back to
//! the swarm's defaults ([`config_defaults`]: `--swarm off`'s node count
//! and settings, as a rerun command writes them), each in the candidate's
//! command line, which `shrunk.json`'s schedule carries to its replay.

use crate::cli::replay::{replay_once, ReplayArgs};
use crate::judge::report::report;
use crate::judge::verdict::{EXIT_UNKNOWN, EXIT_VALID};
use crate::nemesis::schedule::Schedule;
use crate::nemesis::shrink::{Oracle, Outcome, Shrinker, Shrunk};
use crate::nemesis::shrink_config::{ConfigShrink, Setting, NODES};
use crate::plan::swarm::{NODES_DEFAULT, TUNING_DEFAULT};
use crate::run::RuntimeSlot;
use crate::store::write_json;
use crate::sut::{Options, Sut, System};
use anyhow::{bail, Context};
use checker::verdict::{Results, Validity};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `harness shrink`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ShrinkArgs {
    /// The failing run's directory (its schedule.json and results.json).
    pub run_dir: PathBuf,
    /// Runs per candidate at most: a candidate fails when any of them
    /// reproduces.
    #[arg(long, default_value_t = 3)]
    pub reruns: u32,
    /// Stop shrinking after this long, keeping the best so far.
    #[arg(long, default_value_t = 1200)]
    pub budget_s: u64,
    /// Replays of the shrunk schedule afterwards, to say how often it
    /// fails (0: none).
    #[arg(long, default_value_t = 5)]
    pub confirm: u32,
    /// A candidate's run ends this long after its last fault's end (never
    /// later than the original's); default: the nemesis interval. Longer
    /// runs reproduce more often and cost more.
    #[arg(long)]
    pub tail_s: Option<u64>,
    /// The anomaly kind to reproduce (`checker:kind`, as results.json
    /// names them); default: any the original run found.
    #[arg(long)]
    pub anomaly: Option<String>,
    /// The node binary (default: the one the workspace builds).
    #[arg(long, env = "ORDEAL_NODE_BIN")]
    pub node_binary: Option<PathBuf>,
    /// Where the candidates' runs go (default: `shrink/` beside the run's
    /// test directories, in its store: a short path, as faultfs's socket
    /// paths must be).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// Where the candidates' runs go: `--store`, or `<store>/shrink` for a
/// run directory `<store>/<test>/<timestamp>`.
fn candidates_store(args: &ShrinkArgs) -> anyhow::Result<PathBuf> {
    if let Some(store) = &args.store {
        return Ok(store.clone());
    }
    let dir = std::fs::canonicalize(&args.run_dir)
        .with_context(|| format!("reading {}", args.run_dir.display()))?;
    let root = dir.parent().and_then(Path::parent).unwrap_or(&dir);
    Ok(root.join("shrink"))
}

/// The anomaly kinds of the invalid checkers (`checker:kind`, counted at
/// least once).
pub fn anomaly_kinds(results: &Results) -> BTreeSet<String> {
    results
        .results
        .iter()
        .filter(|r| r.valid == Validity::Invalid)
        .flat_map(|r| {
            r.anomalies
                .iter()
                .filter(|a| a.count > 0)
                .map(move |a| format!("{}:{}", r.checker, a.kind))
        })
        .collect()
}

/// The kinds to reproduce: those of `run_dir`'s results.json, or the
/// one asked for (which the run must have found).
fn targets(run_dir: &Path, asked: Option<&str>) -> anyhow::Result<BTreeSet<String>> {
    let path = run_dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: Results =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let kinds = anomaly_kinds(&results);
    if kinds.is_empty() {
        bail!(
            "{}: the run found no anomaly: nothing to shrink",
            path.display()
        );
    }
    match asked {
        None => Ok(kinds),
        Some(k) if kinds.contains(k) => Ok(BTreeSet::from([k.to_string()])),
        Some(k) => bail!(
            "--anomaly {k}: the run found {} only",
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Each node setting the `config` step may put back, with its default:
/// the node count ([`NODES_DEFAULT`]), then ordeal-node's settings as an
/// ordeal rerun command writes [`TUNING_DEFAULT`] (so a setting the swarm
/// gains is here without a change).
pub fn config_defaults() -> Vec<Setting> {
    let options = Options {
        seed: 0,
        ack: workloads::Ack::Committed,
        read_mode: workloads::ReadMode::Linearizable,
        request_timeout_ms: 0,
        tuning: TUNING_DEFAULT,
        bugs: Vec::new(),
    };
    let (_, flags) = Sut::Ordeal.rerun_flags(&options);
    let words: Vec<&str> = flags.split_whitespace().collect();
    let mut out = vec![Setting {
        name: NODES.into(),
        flag: "--nodes".into(),
        default: NODES_DEFAULT.to_string(),
    }];
    for pair in words.chunks(2) {
        if let [flag, default] = pair {
            out.push(Setting {
                name: flag.trim_start_matches("--").replace('-', "_"),
                flag: flag.to_string(),
                default: default.to_string(),
            });
        }
    }
    out
}

/// The plan in `dir`'s `test.json`, when it reads.
fn run_plan(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("test.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Candidates replayed on real clusters.
struct Harness<'s> {
    source: PathBuf,
    replay: ReplayArgs,
    slot: &'s RuntimeSlot,
    targets: BTreeSet<String>,
    started: Instant,
    deadline: Instant,
    runs: u32,
    out: PathBuf,
    header: Value,
}

impl Oracle for Harness<'_> {
    async fn run(&mut self, candidate: &Schedule) -> anyhow::Result<Outcome> {
        self.runs += 1;
        // A run the harness could not make stops the shrink (the best so
        // far is in shrunk.json): it says nothing of the candidate.
        let (outcome, _) = replay_once(candidate, &self.source, &self.replay, self.slot)
            .await
            .context("shrink: replaying a candidate")?;
        let found = anomaly_kinds(&outcome.results);
        let reproduced = !found.is_disjoint(&self.targets);
        let plan = reproduced.then(|| run_plan(&outcome.dir)).flatten();
        if !reproduced {
            if let Err(e) = std::fs::remove_dir_all(&outcome.dir) {
                tracing::warn!(dir = %outcome.dir.display(), error = %e, "shrink: removing a passing candidate's run");
            }
        }
        Ok(Outcome {
            reproduced,
            anomalies: found.into_iter().collect(),
            plan,
        })
    }

    fn exhausted(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn improved(&mut self, shrunk: &Shrunk) -> anyhow::Result<()> {
        let mut doc = self.header.clone();
        doc["finished"] = json!(false);
        doc["shrink_s"] = json!(self.started.elapsed().as_secs());
        doc["runs"] = json!(self.runs);
        fill(&mut doc, shrunk);
        write_json(&self.out, &doc)
    }

    fn note(&mut self, line: &str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        eprintln!(
            "shrink [{:>4} s, {} s left, run {}] {line}",
            self.started.elapsed().as_secs(),
            left.as_secs(),
            self.runs
        );
    }
}

/// `shrunk.json`'s fields from the shrinker's result.
fn fill(doc: &mut Value, shrunk: &Shrunk) {
    doc["schedule"] = json!(shrunk.schedule);
    doc["shrunk_faults"] = json!(shrunk.schedule.faults.len());
    doc["anomalies"] = json!(shrunk.anomalies);
    doc["one_minimal"] = json!(shrunk.one_minimal);
    doc["out_of_budget"] = json!(shrunk.out_of_budget);
    doc["trials"] = json!(shrunk.trials);
    doc["config"] = json!(shrunk.config);
}

/// `shrunk.json`'s fields known before any run.
fn header(
    args: &ShrinkArgs,
    original: &Schedule,
    targets: &BTreeSet<String>,
    replay_command: &str,
) -> Value {
    json!({
        "original": args.run_dir.display().to_string(),
        "original_faults": original.faults.len(),
        "seed": original.seed,
        "targets": targets,
        "reruns": args.reruns,
        "tail_s": args.tail_s.unwrap_or(original.clock.nemesis_interval_s),
        "budget_s": args.budget_s,
        "replay_command": replay_command,
    })
}

/// The original did not reproduce: `shrunk.json` says so, holding the
/// original schedule; [`EXIT_UNKNOWN`].
fn not_reproduced(harness: &Harness<'_>, original: &Schedule, reruns: u32) -> anyhow::Result<u8> {
    let mut doc = harness.header.clone();
    doc["finished"] = json!(true);
    doc["reproduced"] = json!(false);
    doc["schedule"] = json!(original.as_plan());
    write_json(&harness.out, &doc)?;
    println!(
        "the original schedule did not reproduce {} in {reruns} runs: nothing shrunk; {}",
        harness
            .targets
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(" or "),
        harness.out.display()
    );
    Ok(EXIT_UNKNOWN)
}

/// `harness shrink`: exit 0 when the shrunk schedule reproduced, 2 when
/// the original's failure did not come back in its reruns.
pub async fn shrink(args: &ShrinkArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let (original, file) = Schedule::read(&args.run_dir)?;
    let targets = targets(&args.run_dir, args.anomaly.as_deref())?;
    let out = args.run_dir.join("shrunk.json");
    let replay_command = format!("cargo run -p harness -- replay {}", out.display());
    let budget = Duration::from_secs(args.budget_s);
    let started = Instant::now();
    let mut harness = Harness {
        source: file,
        replay: ReplayArgs {
            store: candidates_store(args)?,
            node_binary: args.node_binary.clone(),
        },
        slot,
        targets: targets.clone(),
        started,
        deadline: started + budget,
        runs: 0,
        out: out.clone(),
        header: header(args, &original, &targets, &replay_command),
    };
    eprintln!(
        "ordeal: shrinking {} ({} faults, seed {}) to reproduce {}; up to {} runs per candidate, budget {} s",
        args.run_dir.display(),
        original.faults.len(),
        original.seed,
        targets.iter().cloned().collect::<Vec<_>>().join(" or "),
        args.reruns,
        args.budget_s
    );
    let defaults = config_defaults();
    let differing = ConfigShrink::untried(&original.command_line, &defaults).untried;
    let differing: Vec<String> = differing
        .iter()
        .map(|(name, [drawn, default])| format!("{name} {drawn} (default {default})"))
        .collect();
    eprintln!(
        "ordeal: {} node settings differ from their defaults, tried last: {}",
        differing.len(),
        differing.join(", ")
    );
    let Some(anomalies) = baseline(&mut harness, &original, args.reruns).await? else {
        return not_reproduced(&harness, &original, args.reruns);
    };
    let mut shrinker = Shrinker {
        oracle: &mut harness,
        reruns: args.reruns,
        tail_ms: args.tail_s.unwrap_or(original.clock.nemesis_interval_s) * 1000,
        time_limit_ms: original.clock.time_limit_s * 1000,
        defaults,
    };
    let shrunk = shrinker.shrink(original.as_plan(), anomalies).await?;
    let shrink_s = started.elapsed().as_secs();
    let (failures, confirm_s) = confirm(&mut harness, &shrunk.schedule, args.confirm).await?;
    let mut doc = harness.header.clone();
    fill(&mut doc, &shrunk);
    doc["finished"] = json!(true);
    doc["shrink_s"] = json!(shrink_s);
    doc["runs"] = json!(harness.runs);
    doc["confirm_runs"] = json!(args.confirm);
    doc["confirm_failures"] = json!(failures);
    doc["confirm_s"] = json!(confirm_s);
    doc["failing_fraction"] =
        json!((args.confirm > 0).then(|| f64::from(failures) / f64::from(args.confirm)));
    doc["reproduced"] = json!(args.confirm == 0 || failures > 0);
    write_json(&out, &doc)?;
    report(&args.run_dir);
    print_summary(&doc, &shrunk);
    println!(
        "shrunk: {}\nreplay: {replay_command}\n  (which runs: {})",
        out.display(),
        shrunk.schedule.command_line
    );
    Ok(EXIT_VALID)
}

/// The original schedule replayed up to `reruns` times: the anomaly kinds
/// of the first run that reproduced, or `None`.
async fn baseline(
    harness: &mut Harness<'_>,
    original: &Schedule,
    reruns: u32,
) -> anyhow::Result<Option<Vec<String>>> {
    for run in 1..=reruns {
        harness.note(&format!(
            "baseline: the original schedule, run {run} of at most {reruns}"
        ));
        let outcome = harness.run(&original.as_plan()).await?;
        if outcome.reproduced {
            harness.note("baseline: reproduced");
            return Ok(Some(outcome.anomalies));
        }
    }
    Ok(None)
}

/// The shrunk schedule replayed `times` times (past the budget): how many
/// reproduced, and the seconds it took.
async fn confirm(
    harness: &mut Harness<'_>,
    schedule: &Schedule,
    times: u32,
) -> anyhow::Result<(u32, u64)> {
    let started = Instant::now();
    let mut failures = 0;
    for run in 1..=times {
        harness.note(&format!(
            "confirm: the shrunk schedule, run {run} of {times} ({failures} failed so far)"
        ));
        if harness.run(schedule).await?.reproduced {
            failures += 1;
        }
    }
    Ok((failures, started.elapsed().as_secs()))
}

/// The figures: faults before and after, time, how often it fails.
fn print_summary(doc: &Value, shrunk: &Shrunk) {
    println!(
        "\nshrunk {} faults to {} in {} s ({} runs; 1-minimal: {}, out of budget: {}); the shrunk schedule failed {} of {} replays ({} s)",
        doc["original_faults"], doc["shrunk_faults"], doc["shrink_s"], doc["runs"],
        shrunk.one_minimal, shrunk.out_of_budget, doc["confirm_failures"], doc["confirm_runs"], doc["confirm_s"]
    );
    for f in &shrunk.schedule.faults {
        println!("  {} params {}", f.describe(), f.params);
    }
    println!(
        "  run: {} s; anomalies: {}",
        shrunk.schedule.clock.time_limit_s,
        shrunk.anomalies.join(", ")
    );
    println!("  configuration: {}", shrunk.config.describe());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::replay::plan_for;
    use crate::nemesis::schedule::{ScheduleClock, SCHEDULE_VERSION};
    use crate::nemesis::shrink_config::{differing, with_flag};

    #[test]
    fn the_defaults_are_the_swarm_s_and_a_reset_line_replays_with_them() {
        let defaults = config_defaults();
        let get = |name: &str| {
            defaults
                .iter()
                .find(|s| s.name == name)
                .map(|s| (s.flag.as_str(), s.default.as_str()))
        };
        assert_eq!(get("nodes"), Some(("--nodes", "3")));
        assert_eq!(get("tick_ms"), Some(("--tick-ms", "100")));
        assert_eq!(
            get("snapshot_interval_bytes"),
            Some(("--snapshot-interval-bytes", "32768"))
        );
        assert_eq!(get("election_tick"), Some(("--election-tick", "10")));
        assert_eq!(get("cut_when_idle"), Some(("--cut-when-idle", "true")));
        assert!(defaults.len() >= 9, "{defaults:?}");

        // A swarm's rerun line (`--swarm off` so that a setting it does
        // not name gets its default): four settings drawn unlike it.
        let line = "cargo run -p harness -- --swarm off --workload register --nemesis kill --nodes 5 --time-limit-s 30 --runtime process --seed 3 --snapshot-interval-bytes 4096 --snapshot-catchup-entries 4 --max-message-count 500 --preferred-max-bytes 2097152 --batch-timeout-ms 20 --max-inflight-blocks 5 --tick-ms 50 --election-tick 10 --cut-when-idle false";
        let names: Vec<&str> = differing(line, &defaults)
            .iter()
            .map(|(s, _)| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "nodes",
                "snapshot_interval_bytes",
                "tick_ms",
                "cut_when_idle"
            ]
        );
        let mut reset = line.to_string();
        for (s, _) in differing(line, &defaults) {
            reset = with_flag(&reset, &s.flag, &s.default);
        }
        let schedule = Schedule {
            version: SCHEDULE_VERSION,
            seed: 3,
            clock: ScheduleClock {
                time_limit_s: 20,
                nemesis_interval_s: 5,
                recovery_s: 5,
                election_timeout_ms: 500,
            },
            command_line: reset,
            plan: Value::Null,
            replay_of: None,
            faults: Vec::new(),
        };
        let args = ReplayArgs {
            store: "elsewhere".into(),
            node_binary: None,
        };
        let plan = plan_for(&schedule, Path::new("shrunk.json"), &args).unwrap();
        assert_eq!(plan.nodes.len(), 3);
        assert_eq!(plan.node_config, TUNING_DEFAULT);
    }
}
